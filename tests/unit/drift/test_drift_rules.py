"""Severities, the managed-service ignore list, the expected-catalog cache and the report forms (no server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.drift.expected import ExpectedCatalogError, ExpectedCatalogs, cache_key
from infra.drift.model import DriftItem, DriftReport, Severity
from infra.drift.report import format_value, render_markdown, render_text
from infra.drift.rules import MANAGED_SERVICE, severity
from infra.drift.schema import catalog_items
from infra.errors import ExitCode, InfraError
from infra.migrations import source
from infra.migrations.catalog import EXISTS, Catalog
from infra.paths import MIGRATIONS_DIR

SEC, STRUCT, COSM = Severity.SECURITY, Severity.STRUCTURE, Severity.COSMETIC
DEFINER = {"security_definer": True}
INVOKER = {"security_definer": False}


@pytest.mark.parametrize(
    ("kind", "attribute", "before", "after", "expected"),
    [
        ("table", "acl:PUBLIC", {}, {}, SEC),
        ("table", "owner", {}, {}, SEC),
        ("table", "rls_forced", {}, {}, SEC),
        ("column", "acl:app_readonly", {}, {}, SEC),
        ("policy", EXISTS, None, {}, SEC),
        ("membership", EXISTS, None, {}, SEC),
        ("trigger", "enabled", {}, {}, SEC),
        ("trigger", EXISTS, {}, None, SEC),
        ("function", "body", DEFINER, DEFINER, SEC),
        ("function", "body", INVOKER, INVOKER, STRUCT),
        ("function", "body", INVOKER, DEFINER, SEC),  # made a definer by hand: its body matters
        ("function", "search_path", INVOKER, INVOKER, SEC),
        ("function", EXISTS, None, DEFINER, SEC),
        ("function", EXISTS, None, INVOKER, STRUCT),
        ("view", "options", {"options": None}, {"options": "security_barrier=false"}, SEC),
        ("column", "default", {}, {}, STRUCT),
        ("index", EXISTS, {}, None, STRUCT),
        ("table", "comment", {}, {}, COSM),
        ("function", "cost", INVOKER, INVOKER, COSM),
    ],
)
def test_severity(
    kind: str, attribute: str, before: dict[str, object] | None, after: dict[str, object] | None, expected: Severity
) -> None:
    assert severity(kind, attribute, before, after) is expected  # type: ignore[arg-type]


def _catalog(objects: dict[str, dict[str, dict[str, object]]]) -> Catalog:
    return Catalog(160014, objects)  # type: ignore[arg-type]


def test_what_the_managed_service_adds_is_ignored_and_nothing_else() -> None:
    expected = _catalog({"table": {"app.t": {"owner": "app_owner", "acl:app_owner": "SELECT"}}})
    actual = _catalog(
        {
            "table": {"app.t": {"owner": "app_owner", "acl:app_owner": "SELECT", "acl:rds_superuser": "SELECT"}},
            "membership": {"pgadmin in rds_superuser": {"set": True}, "app in cloudsqlsuperuser": {"set": True}},
            "role": {"rdsadmin": {"superuser": True}, "pgadmin": {"createrole": True}, "intruder": {"login": True}},
            "extension": {"pg_stat_statements": {"version": "1.10"}},
        }
    )
    ignore = MANAGED_SERVICE.with_provider_roles("pgadmin")
    found = [(i.object, i.attribute) for i in catalog_items(expected, actual, ignore)]
    assert found == [("role intruder", EXISTS), ("role pgadmin", EXISTS)]  # the admin's presence still counts


def test_another_major_version_cannot_be_compared() -> None:
    with pytest.raises(InfraError, match="live server is PostgreSQL 17 but the expected catalog was built on 16"):
        catalog_items(_catalog({}), Catalog(170002, {}))


def test_the_cache_key_follows_every_input() -> None:
    migrations = source.load(MIGRATIONS_DIR).migrations
    key = cache_key(migrations, "pgadmin")
    assert key == cache_key(migrations, "pgadmin")
    assert key != cache_key(migrations[:-1], "pgadmin")
    assert key != cache_key(migrations, "admin")
    assert key != cache_key(migrations, "pgadmin", server_major=17)


def test_a_cached_catalog_is_used_without_starting_a_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PG16_BINDIR", str(tmp_path / "no-postgres-here"))
    migrations = source.load(MIGRATIONS_DIR).migrations
    stored = _catalog({"table": {"app.t": {"owner": "app_owner"}}})
    (tmp_path / f"{cache_key(migrations, 'pgadmin')}.json").write_text(json.dumps(stored.to_json()))
    found = ExpectedCatalogs("pgadmin", cache_dir=tmp_path).get(migrations)
    assert found.source == "cache"
    assert found.catalog == stored
    # another key misses the cache and must build: without PostgreSQL 16 that is an error (exit 1)
    with pytest.raises(ExpectedCatalogError, match="cannot start the PostgreSQL 16") as info:
        ExpectedCatalogs("pgadmin", cache_dir=tmp_path).get(migrations[:-1])
    assert info.value.exit_code == ExitCode.ERROR


def test_long_values_are_shortened_in_text_and_diffed_in_markdown() -> None:
    body_before = "\n    SELECT t.id FROM app.tenants t\n    WHERE t.status = 'active'\n    LIMIT 1\n"
    body_after = "\n    SELECT t.id FROM app.tenants t\n    LIMIT 1\n"
    item = DriftItem("schema", "catalog", "function app.f(x text)", "body", body_before, body_after, SEC)
    report = DriftReport("prod", ("schema",), (item,), expected_source="cache (key abc)")
    text = render_text(report)
    assert "expected SELECT t.id FROM app.tenants t… (4 lines, sha256 " in text
    markdown = render_markdown(report)
    assert "<summary>function app.f(x text) · body: full diff</summary>" in markdown
    assert "-    WHERE t.status = 'active'" in markdown
    assert format_value(["a", "b"]) == "a, b"
    assert format_value(None) == "(not set)"
    assert format_value(False) == "false"
