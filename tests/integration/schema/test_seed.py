"""``seed`` loads realistic development data idempotently; ``seed`` and ``reset`` refuse production."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from infra.cli import main
from infra.enums import Environment
from infra.errors import SafetyError
from infra.migrations.ledger import LOCK_KEY, ledger_environment, stamp_environment
from infra.postdeploy.seed import reset, seed
from tests.fixtures.pg import PgDatabase
from tests.fixtures.schema import migration_files, target_for, use_tenant

OUTPUTS = Path(__file__).resolve().parents[2] / "fixtures" / "outputs" / "aws-dev.json"

COUNTS = """
SELECT (SELECT count(*) FROM app.tenants), (SELECT count(*) FROM app.users),
       (SELECT count(*) FROM app.user_roles), (SELECT count(*) FROM app.subscriptions),
       (SELECT count(*) FROM app.virtual_wallets), (SELECT count(*) FROM app.coin_transactions),
       (SELECT count(*) FROM app.audit_logs), (SELECT count(*) FROM app.tenant_api_keys),
       (SELECT count(*) FROM app.documents)
"""


def _snapshot(db: PgDatabase) -> tuple[Any, ...]:
    """Row counts and balances, read as the superuser (row-level security does not apply)."""
    with db.connect_superuser() as conn:
        counts = conn.execute(COUNTS).fetchone()
        balances = conn.execute(
            "SELECT w.id::text, w.balance, coalesce(sum(t.amount), 0) FROM app.virtual_wallets w"
            " LEFT JOIN app.coin_transactions t ON t.wallet_id = w.id GROUP BY w.id ORDER BY w.id"
        ).fetchall()
    return counts, tuple(balances)


def test_seed_is_realistic_and_idempotent(schema_db: PgDatabase) -> None:
    spec = target_for(schema_db).connection
    first = seed(spec)
    assert first.files == (
        "01_tenants_users.sql",
        "02_subscriptions_wallets.sql",
        "03_audit_api_keys.sql",
        "04_documents.sql",
    )
    after_one = _snapshot(schema_db)
    counts, balances = after_one
    assert counts == (2, 6, 7, 3, 5, 10, 6, 2, 3)
    assert [b[1] for b in balances] == [850, 150, 10, 180, 40]
    assert all(balance == total for _, balance, total in balances)

    seed(spec)
    assert _snapshot(schema_db) == after_one


def test_seed_as_a_migrator_login_and_fail_closed_without_the_ledger(schema_db: PgDatabase, login_as: Any) -> None:
    """``local up`` seeds as ``migrator`` (member of app_owner, reads the ledger it wrote); a login
    that cannot read the ledger cannot rule out production, so it is refused."""
    app = login_as("app_readwrite")
    spec = target_for(schema_db).connection
    with pytest.raises(SafetyError, match="cannot read its migration ledger"):
        seed(dataclasses.replace(spec, user=app.name, password=lambda: app.password))
    assert _snapshot(schema_db)[0][0] == 0

    migrator = login_as("app_owner")
    with schema_db.connect_admin(autocommit=True) as conn:
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA migrations_ledger TO {}").format(sql.Identifier(migrator.name)))
        conn.execute(
            sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA migrations_ledger TO {}").format(
                sql.Identifier(migrator.name)
            )
        )
    seed(dataclasses.replace(spec, user=migrator.name, password=lambda: migrator.password))
    assert _snapshot(schema_db)[0] == (2, 6, 7, 3, 5, 10, 6, 2, 3)


def test_seeded_tenants_are_isolated_for_the_app_role(schema_db: PgDatabase, login_as: Any) -> None:
    seed(target_for(schema_db).connection)
    with login_as("app_readwrite").connect() as conn:
        use_tenant(conn, "10000000-0000-4000-8000-000000000002")
        emails = [r[0] for r in conn.execute("SELECT email FROM app.users ORDER BY email")]
        assert emails == ["Bob@Acme.example.com", "dana@globex.example.org", "eve@globex.example.org"]
        # the seeded API key authenticates only while live: Globex's is revoked
        live = conn.execute(
            "SELECT count(*) FROM app.authenticate_api_key('dev_acme_key', sha256('dev_acme_key_0001'::bytea))"
        ).fetchone()
        revoked = conn.execute(
            "SELECT count(*) FROM app.authenticate_api_key('dev_globex_key', sha256('dev_globex_key_0001'::bytea))"
        ).fetchone()
        assert (live, revoked) == ((1,), (0,))


def test_seed_refuses_production(schema_db: PgDatabase) -> None:
    spec = target_for(schema_db).connection
    with pytest.raises(SafetyError, match="environment is production"):
        seed(spec, environment=Environment.PRODUCTION)
    with schema_db.connect_admin(autocommit=True) as conn:
        stamp_environment(conn, Environment.PRODUCTION.value)
    with pytest.raises(SafetyError, match="ledger marks it production"):
        seed(spec, environment=Environment.DEV)
    with schema_db.connect_superuser() as conn:
        assert conn.execute("SELECT count(*) FROM app.tenants").fetchone() == (0,)


def test_reset_needs_confirm_then_drops_and_reapplies(schema_db: PgDatabase) -> None:
    spec = target_for(schema_db).connection
    seed(spec)
    with pytest.raises(SafetyError, match=f"--confirm {schema_db.name}"):
        reset(spec, confirm="some-other-db")
    with pytest.raises(SafetyError, match="--confirm dev"):
        reset(spec, confirm=schema_db.name, stack="dev")
    assert _snapshot(schema_db)[0][0] == 2  # refused: nothing changed

    result = reset(spec, confirm=schema_db.name)
    assert result.forgotten == tuple(range(1, len(migration_files()) + 1))
    assert result.applied == tuple(p.name.removesuffix(".sql") for p in migration_files())
    assert _snapshot(schema_db) == ((0, 0, 0, 0, 0, 0, 0, 0, 0), ())
    with schema_db.connect_admin() as conn:
        events = conn.execute(
            "SELECT count(*) FROM migrations_ledger.events WHERE action = 'forget' AND reason = %s",
            (f"reset --confirm {schema_db.name}",),
        ).fetchone()
        assert events == (len(migration_files()),)
        assert conn.execute("SELECT count(*) FROM app.roles").fetchone() == (3,)


def test_reset_refuses_production_even_when_confirmed(schema_db: PgDatabase) -> None:
    spec = target_for(schema_db).connection
    with pytest.raises(SafetyError, match="environment is production"):
        reset(spec, confirm=schema_db.name, environment=Environment.PRODUCTION)
    with schema_db.connect_admin(autocommit=True) as conn:
        stamp_environment(conn, Environment.PRODUCTION.value)
    with pytest.raises(SafetyError, match="ledger marks it production"):
        reset(spec, confirm=schema_db.name)
    with schema_db.connect_admin() as conn:
        assert conn.execute("SELECT to_regclass('app.tenants') IS NOT NULL").fetchone() == (True,)


def _cli_args(db: PgDatabase) -> list[str]:
    p = db.cluster.tcp_params(db.admin_user, db.name)
    return [
        "--host", p["host"], "--hostaddr", p["hostaddr"], "--port", p["port"], "--dbname", db.name,
        "--user", db.admin_user, "--sslmode", "verify-full", "--sslrootcert", p["sslrootcert"],
    ]  # fmt: skip


def test_cli_seed_and_reset(
    schema_db: PgDatabase, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PGPASSWORD", schema_db.admin_password)  # never on the command line
    assert main(["seed", *_cli_args(schema_db)]) == 0
    assert "seeded database" in capsys.readouterr().out

    assert main(["reset", *_cli_args(schema_db), "--confirm", schema_db.name, "--environment", "production"]) == 1
    err = capsys.readouterr().err
    assert "environment is production" in err
    assert schema_db.admin_password not in err

    assert main(["reset", *_cli_args(schema_db), "--confirm", "wrong"]) == 1
    assert f"--confirm {schema_db.name}" in capsys.readouterr().err

    assert main(["reset", *_cli_args(schema_db), "--confirm", schema_db.name]) == 0
    assert f"{len(migration_files())} migration(s) applied" in capsys.readouterr().out
    with psycopg.connect(**schema_db.admin_params()) as conn:
        assert conn.execute("SELECT count(*) FROM migrations_ledger.applied").fetchone() == (len(migration_files()),)


def test_reset_refuses_while_a_migration_holds_the_lock(schema_db: PgDatabase) -> None:
    """reset refuses instead of dropping the schema under a running migration (the engine's lock)."""
    with schema_db.connect_admin(autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, %s)", LOCK_KEY)
        with pytest.raises(SafetyError, match="holds the migration lock"):
            reset(target_for(schema_db).connection, confirm=schema_db.name)
    with schema_db.connect_admin() as conn:
        assert conn.execute("SELECT to_regclass('app.tenants') IS NOT NULL").fetchone() == (True,)


@pytest.mark.parametrize("verb", [["seed"], ["reset", "--confirm", "prod"]])
def test_stack_outputs_saying_production_refuse_even_with_host(
    schema_db: PgDatabase,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    verb: list[str],
) -> None:
    """Issue 11.5 as written: ``seed --stack prod --host ...`` / ``reset --stack prod --confirm prod
    --host ...`` on a database whose ledger has no stamp yet, while the stack's outputs say production."""
    doc = json.loads(OUTPUTS.read_text())
    doc["environment"] = "production"
    outputs = tmp_path / "prod.json"
    outputs.write_text(json.dumps(doc))
    monkeypatch.setenv("PGPASSWORD", schema_db.admin_password)
    with schema_db.connect_admin() as conn:
        assert ledger_environment(conn) is None  # no stamp: only the stack outputs know
    before = _snapshot(schema_db)
    argv = [*verb, "--stack", "prod", "--outputs-file", str(outputs), *_cli_args(schema_db)]
    assert main(argv) == 1
    assert f"refusing to {verb[0]} stack 'prod': its environment is production" in capsys.readouterr().err
    assert _snapshot(schema_db) == before
    with schema_db.connect_admin() as conn:
        assert conn.execute("SELECT count(*) FROM migrations_ledger.applied").fetchone() == (len(migration_files()),)
    # the legitimate path: the same command with a dev stack's outputs works
    confirm = ["--confirm", "dev"] if verb[0] == "reset" else []
    assert main([verb[0], "--stack", "dev", "--outputs-file", str(OUTPUTS), *_cli_args(schema_db), *confirm]) == 0
