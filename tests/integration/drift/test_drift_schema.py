"""Schema drift on real PostgreSQL 16, one case per kind of hand-made change.

The live database is deployed like a stack (role bootstrap, then the bundled migrations as
``migrator``), copied per test and changed by hand as the superuser; the expected catalog is
built by the real code on a separate throwaway server. Each case asserts the exact item:
object, attribute, expected, actual and severity.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from infra.drift.cli import DriftOptions, LiveDatabase, run_drift
from infra.drift.expected import ExpectedCatalogs
from infra.drift.model import DriftItem, DriftReport, Severity
from infra.drift.report import render_markdown
from infra.errors import ExitCode, InfraError
from infra.migrations.catalog import EXISTS
from infra.paths import MIGRATIONS_DIR
from tests.fixtures.drift import DriftDb

SEC, STRUCT = Severity.SECURITY, Severity.STRUCTURE
TENANT_CHECK = "(tenant_id = ( SELECT app.current_tenant() AS current_tenant))"  # the signed context (0008)


def check(db: DriftDb, expected: ExpectedCatalogs, migrations: Path = MIGRATIONS_DIR) -> DriftReport:
    options = DriftOptions(migrations_dir=migrations, check_infra=False, cache_dir=None)
    return run_drift("live", options, database=db.live(), expected=expected)


def row(item: DriftItem) -> tuple[str, str, Any, Any, Severity]:
    return (item.object, item.attribute, item.expected, item.actual, item.severity)


def rows(report: DriftReport) -> list[tuple[str, str, Any, Any, Severity]]:
    return [row(item) for item in report.items]


def hand_change(db: DriftDb, *statements: str) -> None:
    with db.superuser() as conn:
        for statement in statements:
            conn.execute(statement)


def test_a_deployed_database_matches_the_migrations(drift_db: DriftDb, drift_expected: ExpectedCatalogs) -> None:
    report = check(drift_db, drift_expected)
    assert report.checks == ("schema",)
    assert report.items == ()
    assert report.expected_source is not None
    assert report.expected_source.startswith("built on PostgreSQL 16")


def test_rls_disabled_and_not_forced(drift_db: DriftDb, drift_expected: ExpectedCatalogs) -> None:
    hand_change(
        drift_db,
        "ALTER TABLE app.coin_transactions DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE app.users NO FORCE ROW LEVEL SECURITY",
    )
    assert rows(check(drift_db, drift_expected)) == [
        ("table app.coin_transactions", "rls_enabled", True, False, SEC),
        ("table app.users", "rls_forced", True, False, SEC),
    ]


def test_grant_to_public(drift_db: DriftDb, drift_expected: ExpectedCatalogs) -> None:
    hand_change(drift_db, "GRANT SELECT ON app.users TO PUBLIC")
    assert rows(check(drift_db, drift_expected)) == [("table app.users", "acl:PUBLIC", None, "SELECT", SEC)]


def test_policy_expression_and_roles_changed(drift_db: DriftDb, drift_expected: ExpectedCatalogs) -> None:
    hand_change(
        drift_db,
        "ALTER POLICY tenant_isolation ON app.users USING (true)",
        "ALTER POLICY platform_admin_all ON app.tenants TO platform_admin, app_readwrite",
    )
    assert rows(check(drift_db, drift_expected)) == [
        (
            "policy app.tenants.platform_admin_all",
            "roles",
            ["platform_admin"],
            ["app_readwrite", "platform_admin"],
            SEC,
        ),
        ("policy app.users.tenant_isolation", "using", TENANT_CHECK, "true", SEC),
    ]


def test_security_definer_body_and_search_path(drift_db: DriftDb, drift_expected: ExpectedCatalogs) -> None:
    hand_change(
        drift_db,
        "ALTER FUNCTION app.authenticate_api_key(text, bytea) SET search_path = public, pg_temp",
        """CREATE OR REPLACE FUNCTION app.resolve_tenant(p_slug_or_domain text) RETURNS uuid
               LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
               AS $fn$ SELECT t.id FROM app.tenants t LIMIT 1 $fn$""",
    )
    found = {(i.object.split("(")[0], i.attribute): i for i in check(drift_db, drift_expected).items}
    assert set(found) == {("function app.authenticate_api_key", "search_path"), ("function app.resolve_tenant", "body")}
    assert row(found["function app.authenticate_api_key", "search_path"])[2:] == (
        "pg_catalog, pg_temp",
        "public, pg_temp",
        SEC,
    )
    body = found["function app.resolve_tenant", "body"]
    assert body.severity is SEC
    assert "t.status = 'active'" in str(body.expected)
    assert str(body.actual).strip() == "SELECT t.id FROM app.tenants t LIMIT 1"


def test_trigger_disabled(drift_db: DriftDb, drift_expected: ExpectedCatalogs) -> None:
    hand_change(drift_db, "ALTER TABLE app.coin_transactions DISABLE TRIGGER coin_transactions_append_only")
    assert rows(check(drift_db, drift_expected)) == [
        ("trigger app.coin_transactions.coin_transactions_append_only", "enabled", "enabled", "disabled", SEC)
    ]


def test_role_membership_granted(drift_db: DriftDb, drift_expected: ExpectedCatalogs) -> None:
    # roles are cluster-wide: undo the grant whatever happens, or it leaks into the other tests
    hand_change(drift_db, "GRANT app_owner TO app")
    try:
        report = check(drift_db, drift_expected)
    finally:
        hand_change(drift_db, "REVOKE app_owner FROM app")
    assert rows(report) == [("membership app in app_owner", EXISTS, "absent", "present", SEC)]


def test_ownership_changed(drift_db: DriftDb, drift_expected: ExpectedCatalogs) -> None:
    hand_change(drift_db, "ALTER TABLE app.audit_logs OWNER TO admin")
    report = check(drift_db, drift_expected)
    assert ("table app.audit_logs", "owner", "app_owner", "admin", SEC) in rows(report)
    # the owner's own privileges moved with it: the grants differ too, and are security as well
    assert {(i.object, i.attribute) for i in report.items} >= {
        ("table app.audit_logs", "acl:app_owner"),
        ("table app.audit_logs", "acl:admin"),
    }
    assert {i.severity for i in report.items} == {SEC}


def test_default_privileges_widened(drift_db: DriftDb, drift_expected: ExpectedCatalogs) -> None:
    hand_change(drift_db, "ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA app GRANT SELECT ON TABLES TO PUBLIC")
    assert rows(check(drift_db, drift_expected)) == [
        ("default privileges for app_owner in schema app on tables", "acl:PUBLIC", None, "SELECT", SEC)
    ]


def test_added_column_dropped_index_changed_default_extra_table(
    drift_db: DriftDb, drift_expected: ExpectedCatalogs
) -> None:
    hand_change(
        drift_db,
        "SET ROLE app_owner",  # as someone holding the migrator's rights would
        "ALTER TABLE app.tenants ADD COLUMN hacked text",
        "DROP INDEX app.users_tenant_id_status_idx",
        "ALTER TABLE app.users ALTER COLUMN locale SET DEFAULT 'fr'",
        "CREATE TABLE app.extra (id integer)",
    )
    assert rows(check(drift_db, drift_expected)) == [
        ("column app.extra.id", EXISTS, "absent", "present", STRUCT),
        ("column app.tenants.hacked", EXISTS, "absent", "present", STRUCT),
        ("column app.users.locale", "default", "'en'::text", "'fr'::text", STRUCT),
        ("index app.users_tenant_id_status_idx", EXISTS, "present", "absent", STRUCT),
        ("table app.extra", EXISTS, "absent", "present", STRUCT),
    ]


def test_an_edited_applied_file_is_ledger_drift(
    drift_db: DriftDb, drift_expected: ExpectedCatalogs, migrations_copy: Path
) -> None:
    edited = migrations_copy / "0005_audit_api_keys.sql"
    edited.write_text(edited.read_text() + "\n-- a harmless comment, but the applied file changed\n")
    items = check(drift_db, drift_expected, migrations_copy).items
    assert [(i.check, i.object, i.attribute, i.severity) for i in items] == [
        ("ledger", "migration 0005_audit_api_keys.sql", "checksum", STRUCT)
    ]
    assert "repair --version 5" in items[0].note


def test_a_missing_applied_file_is_ledger_drift(
    drift_db: DriftDb, drift_expected: ExpectedCatalogs, migrations_copy: Path
) -> None:
    (migrations_copy / "0007_readonly_hides_secrets.sql").unlink()
    report = check(drift_db, drift_expected, migrations_copy)
    ledger = [row(i) for i in report.items if i.check == "ledger"]
    assert ledger == [("migration 0007_readonly_hides_secrets.sql", "file", "present", "absent", STRUCT)]
    # without the file the expected catalog lacks its grants: the live ones show as drift
    catalog = {(i.object, i.attribute): (i.expected, i.actual) for i in report.items if i.check == "catalog"}
    assert catalog[("table app.users", "acl:app_readonly")] == ("SELECT", None)
    assert catalog[("column app.users.email", "acl:app_readonly")] == (None, "SELECT")


def test_an_unreachable_database_is_an_error_not_a_clean_report(
    drift_expected: ExpectedCatalogs, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from infra.cli import main
    from infra.migrations.connection import ConnectionSpec, connect
    from infra.postdeploy.tunnel import free_port

    dead = ConnectionSpec(host="127.0.0.1", port=free_port(), dbname="app", user="migrator", connect_timeout=2)

    @contextmanager
    def open_(run_id: str) -> Iterator[psycopg.Connection[Any]]:
        with connect(dead, run_id) as conn:
            yield conn

    unreachable = LiveDatabase(open_, "admin")
    with pytest.raises(InfraError) as info:
        run_drift("live", DriftOptions(check_infra=False), database=unreachable, expected=drift_expected)
    assert info.value.exit_code == ExitCode.ERROR
    monkeypatch.setattr("infra.drift.cli._local_database", lambda root: unreachable)
    assert main(["drift", "--local"]) == ExitCode.ERROR
    captured = capsys.readouterr()
    assert captured.out == ""  # no report at all, least of all "no drift"
    assert "error:" in captured.err


def test_markdown_and_json_carry_every_item(
    drift_db: DriftDb, drift_expected: ExpectedCatalogs, tmp_path: Path
) -> None:
    hand_change(
        drift_db,
        "ALTER TABLE app.coin_transactions DISABLE ROW LEVEL SECURITY",
        "COMMENT ON TABLE app.tenants IS 'edited by hand'",
    )
    report = check(drift_db, drift_expected)
    markdown = render_markdown(report)
    assert markdown.startswith("<!-- drift-report stack=live -->\n## Drift: stack `live`: 2 difference(s)")
    assert markdown.index("### Security (1)") < markdown.index("### Cosmetic (1)")
    assert "<code>table app.coin_transactions</code> | <code>rls_enabled</code>" in markdown
    doc = json.loads(json.dumps(report.to_json()))
    assert doc["counts"] == {"security": 1, "structure": 0, "cosmetic": 1}
    assert [i["severity"] for i in doc["items"]] == ["security", "cosmetic"]


def test_drift_local_through_the_demo_jump_host(demo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`drift --local` after `local up` (the demo's own post-deploy run, not the fixtures'): clean
    (exit 0) against an expected catalog built from scratch, then a hand-made column (exit 2)."""
    from infra.cli import main
    from infra.local.demo import DemoState, LocalDemo

    root = demo_dir
    assert main(["local", "up", "--dir", str(root), "--no-seed"]) == 0
    try:
        capsys.readouterr()
        assert main(["drift", "--local", "--dir", str(root), "--no-cache"]) == 0
        assert capsys.readouterr().out.rstrip().endswith("no drift")

        state = DemoState.load(root)
        assert state is not None
        pg = LocalDemo(root).postgres(state.pg_port)
        with psycopg.connect(pg.superuser_conninfo(state.db_name), autocommit=True) as conn:
            conn.execute("ALTER TABLE app.tenants ADD COLUMN hacked text")
        markdown = root / "drift.md"
        assert main(["drift", "--local", "--dir", str(root), "--no-cache", "--json", "--markdown", str(markdown)]) == 2
        report = json.loads(capsys.readouterr().out)
        assert report["drifted"] is True
        assert [(i["object"], i["attribute"], i["actual"]) for i in report["items"]] == [
            ("column app.tenants.hacked", EXISTS, "present")
        ]
        assert "<code>column app.tenants.hacked</code>" in markdown.read_text()
    finally:
        assert main(["local", "down", "--dir", str(root)]) == 0
