"""The catalog is read in a constant number of round trips, whatever the schema's size.

Counted by a TCP proxy between client and server (each time the client starts sending after
the server last sent is one round trip), for a schema of 10 tables and one of 500.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from infra.migrations import catalog
from tests.fixtures.drift import wide_schema_sql
from tests.fixtures.pg import PgDatabase
from tests.fixtures.proxy import TcpProxy


@pytest.mark.parametrize("tables", [10, 500])
def test_introspection_round_trips_do_not_grow_with_the_schema(
    pg_db: PgDatabase, tcp_proxy: type[TcpProxy], tables: int
) -> None:
    with pg_db.connect_admin(autocommit=True) as conn:
        conn.execute(wide_schema_sql(tables))
    server = pg_db.cluster.tcp_params(pg_db.admin_user, pg_db.name)
    with tcp_proxy(server["hostaddr"], int(server["port"])) as proxy:
        params: dict[str, Any] = {**server, "hostaddr": "127.0.0.1", "port": proxy.port}
        with psycopg.connect(**params, password=pg_db.admin_password, autocommit=True) as conn:
            proxy.reset()  # count the introspection only, not the TLS and SCRAM handshakes
            found = catalog.introspect(conn)
            trips = proxy.stats().round_trips
    assert trips == 1
    assert len(found.objects["table"]) == tables
    assert len(found.objects["policy"]) == tables
    assert len(found.objects["trigger"]) == tables
    assert len(found.objects["index"]) == 2 * tables  # the primary key's and the tenant index
