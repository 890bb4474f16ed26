"""``local up --replicas 1 --pooler`` on real PostgreSQL 16, pg_basebackup and PgBouncer, through the
jump host: the replica replays the run and passes the read checks, the pooler passes the app checks,
and the isolation-under-pooling attack finds a pooler that does share session state but no tenant
crossing clients. Then the check is shown to fail where it should: with the per-transaction binding
of the tenant context rolled back (0010's down section), and with replay paused on the replica."""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from infra.local.demo import DemoState
from infra.migrations import commands
from infra.migrations.commands import MigrationContext
from infra.migrations.connection import ConnectionSpec
from infra.paths import MIGRATIONS_DIR
from infra.postdeploy.scale import pooled_isolation, primary_minter, wait_for_replay
from infra.postdeploy.tunnel import SshTunnel
from tests.fixtures.scale import ScaledDemo

ATTACKS = (
    "pooled-isolation: session SET app.tenant_id",
    "pooled-isolation: app.set_tenant outside a transaction",
    "pooled-isolation: session SET of a valid token",
)


def _checks(result: Any) -> dict[str, Any]:
    return {c.name: c for c in result.checks}


def test_the_replica_replays_the_run_and_passes_the_read_checks(scaled_demo: ScaledDemo) -> None:
    scale = scaled_demo.report.scale
    assert scale is not None
    [replica] = scale.replicas
    assert replica.name == "replica-0"
    assert replica.host == "replica-0.demo.internal"
    assert replica.replayed
    assert replica.lag_bytes is not None
    assert replica.lag_bytes >= 0
    newest = sorted(p.stem for p in MIGRATIONS_DIR.glob("*.sql"))[-1]
    assert replica.newest is not None
    assert replica.newest.startswith(newest.replace("_", " ", 1))
    checks = _checks(replica.verification)
    assert set(checks) == {"tls", "login", "standby", "read-only", "rls-replayed", "rls-unset", "secrets-hidden"}
    assert all(c.ok for c in checks.values()), checks
    assert checks["login"].detail == "connected as 'readonly'"


def test_the_pooler_shares_server_connections_but_no_tenant(scaled_demo: ScaledDemo) -> None:
    scale = scaled_demo.report.scale
    assert scale is not None
    assert scale.pooler is not None
    checks = _checks(scale.pooler.verification)
    # the precondition of the attack is real: transaction pooling hands A's session state to B
    assert "reached the other in 5/5 rounds" in checks["pooling-shares-state"].detail
    for name in ATTACKS:
        assert checks[name].ok, checks[name]
        assert "(5 on a shared server connection)" in checks[name].detail  # tested where it could leak
    assert checks["tls"].ok
    assert checks["login"].detail == "connected as 'app'"


def test_the_demo_state_names_the_parts_and_the_jump_host_forwards_to_them(scaled_demo: ScaledDemo) -> None:
    state = DemoState.load(scaled_demo.demo.root)
    assert state is not None
    assert len(state.replica_ports) == 1
    assert state.pooler_port is not None
    config = (scaled_demo.demo.root / "jumphost" / "sshd_config").read_text()
    permit = next(line for line in config.splitlines() if line.startswith("PermitOpen "))
    assert set(permit.split()[1:]) == {
        f"127.0.0.1:{p}" for p in (state.pg_port, *state.replica_ports, state.pooler_port)
    }


@contextlib.contextmanager
def _through_jump(demo: ScaledDemo, port: int) -> Iterator[int]:
    """A tunnel through the demo's jump host to ``port`` in its private network; the local port."""
    state = DemoState.load(demo.demo.root)
    assert state is not None
    jump = demo.demo.jump_host(state.pg_port, state.sshd_port)
    with SshTunnel(jump.ssh_options(), "127.0.0.1", port) as tunnel:
        yield tunnel.local_port


@contextlib.contextmanager
def _migrator(demo: ScaledDemo) -> Iterator[ConnectionSpec]:
    state = DemoState.load(demo.demo.root)
    assert state is not None
    with _through_jump(demo, state.pg_port) as local_port:
        yield demo.demo.route(state, local_port).params(demo.demo.credentials().user("migrator"))


@contextlib.contextmanager
def _pooler_connect(demo: ScaledDemo) -> Iterator[Callable[[], psycopg.Connection[Any]]]:
    state = DemoState.load(demo.demo.root)
    assert state is not None
    assert state.pooler_port is not None
    pooler = demo.demo.pooler(demo.demo.postgres(state.pg_port), state.pooler_port)
    password = demo.demo.credentials().user("app").password
    with _through_jump(demo, state.pooler_port) as local_port:

        def connect() -> psycopg.Connection[Any]:
            return psycopg.connect(
                host="pooler.demo.internal",
                hostaddr="127.0.0.1",
                port=local_port,
                dbname="appdb",
                user="app",
                sslmode="verify-full",
                sslrootcert=str(pooler.tls.ca_cert),
                password=password,
                prepare_threshold=None,  # no server-side prepared statements through transaction pooling
            )

        yield connect


def test_the_replica_and_the_pooler_are_reachable_only_through_the_jump_host(scaled_demo: ScaledDemo) -> None:
    state = DemoState.load(scaled_demo.demo.root)
    assert state is not None
    for port in (*state.replica_ports, state.pooler_port):
        assert port is not None
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # nothing listens on this machine's loopback: they live in the database's network


def test_without_the_per_transaction_binding_a_session_token_leaks_and_the_check_says_so(
    scaled_demo: ScaledDemo,
) -> None:
    with _migrator(scaled_demo) as migrator, _pooler_connect(scaled_demo) as connect:
        _leak_without_0010(migrator, connect)


def _leak_without_0010(migrator: ConnectionSpec, connect: Callable[[], psycopg.Connection[Any]]) -> None:
    target = MigrationContext(migrator, MIGRATIONS_DIR)
    commands.rollback(target, to=9, reason="test: show the leak 0010 closes")
    try:
        mint = primary_minter(migrator)
        assert mint is not None
        checks = {c.name: c for c in pooled_isolation(connect, mint)}
        leak = checks["pooled-isolation: session SET of a valid token"]
        assert not leak.ok
        assert "got tenant" in leak.detail
        # the other two never depended on 0010
        assert checks["pooled-isolation: session SET app.tenant_id"].ok
        assert checks["pooled-isolation: app.set_tenant outside a transaction"].ok
    finally:
        commands.migrate(target)
    after = {c.name: c for c in pooled_isolation(connect, primary_minter(migrator))}
    assert all(after[name].ok for name in ATTACKS), after


def test_a_token_left_in_a_session_is_nobodys_tenant_even_on_the_same_connection(scaled_demo: ScaledDemo) -> None:
    with _migrator(scaled_demo) as migrator, _pooler_connect(scaled_demo) as connect:
        mint = primary_minter(migrator)
        assert mint is not None
        _hand_copied_token(connect(), mint)


def _hand_copied_token(conn: psycopg.Connection[Any], mint: Callable[[uuid.UUID], str]) -> None:
    tenant = uuid.uuid4()
    with conn:
        conn.autocommit = True
        with conn.transaction():
            assert conn.execute("SELECT app.set_tenant(%s)", (mint(tenant),)).fetchone() == (tenant,)
            assert conn.execute("SELECT app.current_tenant()").fetchone() == (tenant,)
            token, stamp = conn.execute(
                "SELECT current_setting('app.tenant_token'), current_setting('app.tenant_transaction')"
            ).fetchone() or (None, None)
        # copy both settings into the session by hand: the next transaction still has no tenant
        conn.execute(
            "SELECT set_config('app.tenant_token', %s, false), set_config('app.tenant_transaction', %s, false)",
            (token, stamp),
        )
        assert conn.execute("SELECT app.current_tenant()").fetchone() == (None,)
        conn.execute(
            "SELECT set_config('app.tenant_token', '', false), set_config('app.tenant_transaction', '', false)"
        )


def test_replay_wait_reports_lag_while_replay_is_paused(scaled_demo: ScaledDemo) -> None:
    demo = scaled_demo.demo
    state = DemoState.load(demo.root)
    assert state is not None
    pg = demo.postgres(state.pg_port)
    replica = demo.replica(pg, 0, state.replica_ports[0])
    with (
        psycopg.connect(replica.pg.superuser_conninfo("appdb"), autocommit=True) as standby,
        psycopg.connect(pg.superuser_conninfo("appdb"), autocommit=True) as primary,
    ):
        standby.execute("SELECT pg_wal_replay_pause()")
        try:
            # a new newest ledger row on the primary that the paused replica cannot show yet
            primary.execute(
                "UPDATE migrations_ledger.applied SET run_id = run_id || '-replay-test'"
                " WHERE version = (SELECT max(version) FROM migrations_ledger.applied)"
            )
            newest, replayed, waited, lag = wait_for_replay(primary, standby, timeout=1.0, poll=0.1)
            assert not replayed
            assert waited >= 1.0
            assert lag is not None
            assert lag > 0
            assert newest is not None
            assert newest.run_id.endswith("-replay-test")
        finally:
            standby.execute("SELECT pg_wal_replay_resume()")
        _, replayed, _, _ = wait_for_replay(primary, standby, timeout=30.0)
        assert replayed
        primary.execute(
            "UPDATE migrations_ledger.applied SET run_id = replace(run_id, '-replay-test', '')"
            " WHERE run_id LIKE '%-replay-test'"
        )
