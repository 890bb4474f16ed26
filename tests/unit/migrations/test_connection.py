"""ConnectionSpec: libpq parameters for long tunnels, and a password that never shows."""

from __future__ import annotations

import pytest

from infra.errors import SafetyError
from infra.migrations.connection import ConnectionSpec, spec_from_dsn


def test_params_carry_tunnel_hygiene_and_no_password() -> None:
    spec = ConnectionSpec(
        host="db.internal.example",
        hostaddr="127.0.0.1",
        port=15432,
        dbname="app",
        user="migrator",
        sslmode="verify-full",
        sslrootcert="/ca.pem",
        password=lambda: "s3cr3t-value",
    )
    params = spec.params("20260101T000000-abc123")
    assert params["application_name"] == "migrate:20260101T000000-abc123"
    assert params["connect_timeout"] == "10"
    assert params["keepalives"] == "1"
    assert {"keepalives_idle", "keepalives_interval", "keepalives_count"} <= params.keys()
    assert params["hostaddr"] == "127.0.0.1"
    assert "password" not in params
    assert "s3cr3t-value" not in repr(spec)
    assert "s3cr3t-value" not in spec.describe()
    assert spec.describe() == "migrator@db.internal.example[127.0.0.1]:15432/app"


def test_unset_fields_are_left_to_libpq_environment() -> None:
    params = ConnectionSpec().params("r")
    assert set(params) == {
        "application_name",
        "connect_timeout",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
    }


@pytest.mark.parametrize(
    "dsn",
    ["postgresql://admin:hunter2-secret@db/app", "host=db dbname=app password=hunter2-secret"],
)
def test_dsn_with_a_password_is_refused_without_repeating_it(dsn: str) -> None:
    with pytest.raises(SafetyError) as refused:
        spec_from_dsn(dsn)
    assert "hunter2-secret" not in str(refused.value)
    assert "PGPASSWORD" in str(refused.value)


def test_dsn_without_password_and_overrides() -> None:
    spec = spec_from_dsn("postgresql://admin@db:6543/app?sslmode=verify-full", port=7000, user=None)
    assert (spec.host, spec.port, spec.dbname, spec.user, spec.sslmode) == ("db", 7000, "app", "admin", "verify-full")
