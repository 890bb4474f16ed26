"""``python -m infra import``: small hand-written histories in each tool's layout, what comes out
(files, order, transaction markers, mapping) and what is refused with its fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.cli import main
from infra.migrations import source
from infra.migrations.importers import MAP_FILE, ImportMap, ImportRefused, import_history


def _files(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return directory


def _parsed(dest: Path) -> list[source.Migration]:
    return [source.parse(p) for p in sorted(dest.glob("*.sql"))]


# -- golang-migrate and popx ------------------------------------------------------------------------


def test_golang_migrate_pairs_keep_numeric_order_and_become_one_file_each(tmp_path: Path) -> None:
    src = _files(
        tmp_path / "src",
        {
            "1_init.up.sql": "CREATE TABLE t (id bigint);\n",
            "1_init.down.sql": "DROP TABLE t;\n",
            "10_Add Index.up.sql": "CREATE INDEX CONCURRENTLY t_id ON t (id);\n",
            "10_Add Index.down.sql": "DROP INDEX CONCURRENTLY t_id;\n",
            "9_wrapped.up.sql": "-- keep me\nBEGIN;\nALTER TABLE t ADD COLUMN v text;\nCOMMIT;\n",
            "9_wrapped.down.sql": "ALTER TABLE t DROP COLUMN v;\n",
            "README.md": "not a migration",
        },
    )
    result = import_history("golang-migrate", src, tmp_path / "dest")
    assert result.files == ("0001_init.sql", "0009_wrapped.sql", "0010_add_index.sql")
    init, wrapped, index = _parsed(tmp_path / "dest")
    assert [s.text for s in init.up] == ["CREATE TABLE t (id bigint)"]
    assert [s.text for s in init.down] == ["DROP TABLE t"]
    # the file's own BEGIN/COMMIT goes (the engine wraps it), its comment and its line numbers stay
    assert [(s.line, s.kind) for s in wrapped.up] == [(5, "AlterTableStmt")]
    text = (tmp_path / "dest" / "0009_wrapped.sql").read_text()
    assert "-- migrate:up\n-- keep me\n\nALTER TABLE t ADD COLUMN v text;\n-- migrate:down\n" in text
    # golang-migrate runs a lone CREATE INDEX CONCURRENTLY outside a transaction: so does the import
    assert index.directives.no_transaction
    assert "-- migrate:up transaction:false\n" in (tmp_path / "dest" / "0010_add_index.sql").read_text()
    mapping = ImportMap.read(tmp_path / "dest" / MAP_FILE)
    assert [(m.file, m.sources, m.ledger_key) for m in mapping.migrations][2] == (
        "0010_add_index.sql",
        ("10_Add Index.up.sql", "10_Add Index.down.sql"),
        "10",
    )
    assert mapping.migrations[1].notes == ("wrapping BEGIN/COMMIT removed from the up section",)
    assert mapping.skipped == ("README.md",)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"1_a.up.sql": "SELECT 1;"}, r"1_a\.up\.sql: no 1_a\.down\.sql; fix: write one, or .* --allow-missing-down"),
        ({"1_a.down.sql": "SELECT 1;"}, r"1_a\.down\.sql: a down migration without its up"),
        (
            {"1_a.up.sql": "SELECT 1;", "1_a.down.sql": "", "01_b.up.sql": "SELECT 2;", "01_b.down.sql": ""},
            r"version 1 has a second (up|down) file",
        ),
        (
            {"1_a.up.sql": "SELECT 1;\n-- migrate:down\nSELECT 2;", "1_a.down.sql": ""},
            r"1_a\.up\.sql:2: a line starting '-- migrate:' would be read as a directive",
        ),
    ],
)
def test_golang_migrate_ambiguous_inputs_are_refused_and_nothing_is_written(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    src = _files(tmp_path / "src", files)
    with pytest.raises(ImportRefused, match=message):
        import_history("golang-migrate", src, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src"]  # no staging directory left behind


def test_a_missing_down_is_imported_as_irreversible_only_when_asked(tmp_path: Path) -> None:
    src = _files(tmp_path / "src", {"1_a.up.sql": "CREATE TABLE a (id int);\n"})
    result = import_history("golang-migrate", src, tmp_path / "dest", allow_missing_down=True)
    (mig,) = _parsed(tmp_path / "dest")
    assert not mig.reversible
    assert result.mapping.migrations[0].reversible is False
    assert result.mapping.migrations[0].notes == ("no down file: imported as irreversible",)


def test_popx_dialects_and_autocommit_files(tmp_path: Path) -> None:
    src = _files(
        tmp_path / "src",
        {
            "20210101000000000000_init.up.sql": "CREATE TABLE a (id int);",
            "20210101000000000000_init.down.sql": "DROP TABLE a;",
            "20210101000000000000_init.mysql.up.sql": "CREATE TABLE a (id int) ENGINE=InnoDB;",
            "20210101000000000000_init.mysql.down.sql": "DROP TABLE a;",
            "20210101000000000001_idx.postgres.autocommit.up.sql": "CREATE INDEX CONCURRENTLY a_id ON a (id);",
            "20210101000000000001_idx.postgres.down.sql": "DROP INDEX a_id;",
            "20210101000000000001_idx.up.sql": "CREATE INDEX a_id ON a (id);",
            "20210101000000000001_idx.down.sql": "DROP INDEX a_id;",
        },
    )
    result = import_history("golang-migrate", src, tmp_path / "dest")
    assert result.files == ("20210101000000000000_init.sql", "20210101000000000001_idx.sql")
    init, idx = _parsed(tmp_path / "dest")
    assert [s.text for s in init.up] == ["CREATE TABLE a (id int)"]
    # the postgres file wins over the file for all dialects; .autocommit runs it outside a transaction
    assert [s.text for s in idx.up] == ["CREATE INDEX CONCURRENTLY a_id ON a (id)"]
    assert idx.directives.no_transaction
    assert result.mapping.migrations[1].up_transaction is False
    assert result.mapping.migrations[1].down_transaction is True
    assert result.mapping.migrations[1].ledger_key == "20210101000000000001"
    assert set(result.mapping.skipped) >= {"20210101000000000000_init.mysql.up.sql", "20210101000000000001_idx.up.sql"}


def test_popx_fizz_is_refused(tmp_path: Path) -> None:
    src = _files(tmp_path / "src", {"1_a.up.fizz": 'create_table("a")', "1_a.down.fizz": 'drop_table("a")'})
    with pytest.raises(ImportRefused, match=r"1_a\.down\.fizz: a fizz migration is not SQL"):
        import_history("golang-migrate", src, tmp_path / "dest")


# -- dbmate -----------------------------------------------------------------------------------------


def test_dbmate_files_are_copied_byte_for_byte_under_normalised_names(tmp_path: Path) -> None:
    body = (
        "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY t_v ON t (v);\n-- migrate:down\nDROP INDEX t_v;\n"
    )
    src = _files(
        tmp_path / "src",
        {
            "20200101000000_Create-Users table.sql": "-- migrate:up\nCREATE TABLE t (v text);\n-- migrate:down\n",
            "20200102000000_idx.sql": body,
            "notes.txt": "",
        },
    )
    result = import_history("dbmate", src, tmp_path / "dest")
    assert result.files == ("20200101000000_create_users_table.sql", "20200102000000_idx.sql")
    assert (tmp_path / "dest" / "20200102000000_idx.sql").read_text() == body
    assert result.mapping.migrations[1].up_transaction is False
    assert _parsed(tmp_path / "dest")[1].directives.no_transaction


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {
                "20200101_a.sql": "-- migrate:up\n-- migrate:down\n",
                "20200101_b.sql": "-- migrate:up\n-- migrate:down\n",
            },
            r"20200101_b\.sql: version 20200101 is also 20200101_a\.sql; .* fix: give one of them a new version",
        ),
        (
            {"1_a.sql": "-- migrate:up\nSELECT 1;\n-- migrate:down\n-- migrate:up\nSELECT 2;\n-- migrate:down\n"},
            r"1_a\.sql: 2 '-- migrate:up' and 2 '-- migrate:down' lines; .* fix: split it",
        ),
        ({"1_a.sql": "-- migrate:up\nSELECT 1;\n"}, r"no '-- migrate:down' line .* fix: add '-- migrate:down'"),
        (
            {"9_a.sql": "-- migrate:up\n-- migrate:down\n", "10_b.sql": "-- migrate:up\n-- migrate:down\n"},
            r"dbmate runs 10_b\.sql before 9_a\.sql .* fix: --renumber",
        ),
    ],
)
def test_dbmate_ambiguous_inputs_are_refused(tmp_path: Path, files: dict[str, str], message: str) -> None:
    with pytest.raises(ImportRefused, match=message):
        import_history("dbmate", _files(tmp_path / "src", files), tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_renumber_keeps_the_tools_order(tmp_path: Path) -> None:
    src = _files(
        tmp_path / "src",
        {
            "9_a.sql": "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\n",
            "10_b.sql": "-- migrate:up\nCREATE TABLE b (id int);\n-- migrate:down\n",
        },
    )
    result = import_history("dbmate", src, tmp_path / "dest", renumber=True)
    # dbmate compares names as strings: 10_b.sql runs first, and stays first
    assert result.files == ("0001_b.sql", "0002_a.sql")
    assert [(m.ledger_key, m.order) for m in result.mapping.migrations] == [("10", 1), ("9", 2)]


# -- diesel -----------------------------------------------------------------------------------------


def test_diesel_directories_metadata_and_versions(tmp_path: Path) -> None:
    src = _files(
        tmp_path / "src",
        {
            "00000000000000_diesel_initial_setup/up.sql": "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';",
            "00000000000000_diesel_initial_setup/down.sql": "DROP FUNCTION f();",
            "2017-01-01-000000_create_users/up.sql": "CREATE TABLE users (id bigint);",
            "2017-01-01-000000_create_users/down.sql": "DROP TABLE users;",
            "2017-01-02-000000_users_index/up.sql": "CREATE INDEX CONCURRENTLY users_id ON users (id);",
            "2017-01-02-000000_users_index/down.sql": "DROP INDEX CONCURRENTLY users_id;",
            "2017-01-02-000000_users_index/metadata.toml": "run_in_transaction = false\n",
            "2017-01-03-000000_no_key/up.sql": "VACUUM users;",
            "2017-01-03-000000_no_key/down.sql": "SELECT 1;",
            "2017-01-03-000000_no_key/metadata.toml": "# only a comment\n",
            ".keep": "",
        },
    )
    result = import_history("diesel", src, tmp_path / "dest")
    assert result.files == (
        "00000000000000_diesel_initial_setup.sql",
        "20170101000000_create_users.sql",
        "20170102000000_users_index.sql",
        "20170103000000_no_key.sql",
    )
    index = result.mapping.migrations[2]
    assert (index.ledger_key, index.up_transaction, index.down_transaction) == ("20170102000000", False, False)
    text = (tmp_path / "dest" / "20170102000000_users_index.sql").read_text()
    assert "-- migrate:up transaction:false\n" in text
    assert "-- migrate:down transaction:false\n" in text
    # metadata.toml without the key: diesel's serde default is false, and the mapping says so
    assert result.mapping.migrations[3].up_transaction is False
    assert "serde default" in result.mapping.migrations[3].notes[0]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"2017_a/down.sql": "SELECT 1;"}, r"2017_a/: no up\.sql"),
        ({"2017_a/up.sql": "SELECT 1;"}, r"2017_a/: no down\.sql; fix: .* --allow-missing-down"),
        (
            {"2017_a/up.sql": "SELECT 1;", "2017_a/down.sql": "", "2017_a/metadata.toml": "run_in_transaction = nope"},
            r"2017_a/metadata\.toml: not valid TOML",
        ),
        ({"v1_a/up.sql": "SELECT 1;", "v1_a/down.sql": ""}, r"v1_a/: version 'v1' is not digits"),
    ],
)
def test_diesel_refusals(tmp_path: Path, files: dict[str, str], message: str) -> None:
    with pytest.raises(ImportRefused, match=message):
        import_history("diesel", _files(tmp_path / "src", files), tmp_path / "dest")


# -- flyway -----------------------------------------------------------------------------------------


def test_flyway_versions_undo_and_config(tmp_path: Path) -> None:
    src = _files(
        tmp_path / "src",
        {
            "V1__Create_table.sql": "CREATE TABLE t (id bigint);",
            "U1__Create_table.sql": "DROP TABLE t;",
            "sub/V1_1__add_index.sql": "CREATE INDEX CONCURRENTLY t_id ON t (id);",
            "V2__vacuum.sql": "ANALYZE t;",
            "V2__vacuum.sql.conf": "executeInTransaction=false\n",
        },
    )
    with pytest.raises(ImportRefused, match=r"version '1\.1' is not a whole number; fix: --renumber"):
        import_history("flyway", src, tmp_path / "dest")
    result = import_history("flyway", src, tmp_path / "dest", renumber=True)
    assert result.files == ("0001_create_table.sql", "0002_add_index.sql", "0003_vacuum.sql")
    assert [(m.ledger_key, m.up_transaction, m.reversible) for m in result.mapping.migrations] == [
        ("1", True, True),
        ("1.1", False, False),  # Flyway itself runs a CONCURRENTLY statement outside a transaction
        ("2", False, False),  # executeInTransaction=false
    ]
    first = _parsed(tmp_path / "dest")[0]
    assert [s.text for s in first.down] == ["DROP TABLE t"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"R__views.sql": "CREATE VIEW v AS SELECT 1;"}, r"R__views\.sql: a repeatable migration"),
        ({"V1__a.sql": "CREATE SCHEMA ${schema};"}, r"V1__a\.sql:1: Flyway placeholder \$\{schema\}"),
        (
            {"V1__a.sql": "SELECT 1;", "V1.0__b.sql": "SELECT 2;"},
            r"version 1(\.0)? is also V1(\.0)?__[ab]\.sql; Flyway refuses that",
        ),
        ({"U3__a.sql": "SELECT 1;"}, r"U3__a\.sql: an undo script without its migration"),
        ({"B5__base.sql": "SELECT 1;"}, r"B5__base\.sql: a baseline migration"),
    ],
)
def test_flyway_refusals(tmp_path: Path, files: dict[str, str], message: str) -> None:
    with pytest.raises(ImportRefused, match=message):
        import_history("flyway", _files(tmp_path / "src", files), tmp_path / "dest")


# -- all --------------------------------------------------------------------------------------------


def test_destination_must_be_new_or_empty(tmp_path: Path) -> None:
    src = _files(tmp_path / "src", {"1_a.sql": "-- migrate:up\n-- migrate:down\n"})
    _files(tmp_path / "dest", {"0001_mine.sql": "-- migrate:up\n"})
    with pytest.raises(ImportRefused, match=r"exists and is not empty; fix: import into a new directory"):
        import_history("dbmate", src, tmp_path / "dest")
    (tmp_path / "empty").mkdir()
    assert import_history("dbmate", src, tmp_path / "empty").files == ("0001_a.sql",)


def test_sql_the_engine_refuses_is_refused_at_import_with_the_source_file(tmp_path: Path) -> None:
    src = _files(tmp_path / "src", {"1_a.up.sql": "SELECT 1;\nCOMMIT;\nSELECT 2;", "1_a.down.sql": ""})
    with pytest.raises(ImportRefused, match=r"1_a\.up\.sql, 1_a\.down\.sql: the engine refuses it as 0001_a\.sql"):
        import_history("golang-migrate", src, tmp_path / "dest")


def test_cli_import_prints_the_summary_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _files(tmp_path / "src", {"1_a.up.sql": "BEGIN;\nSELECT 1;\nCOMMIT;\n", "1_a.down.sql": "SELECT 2;\n"})
    assert main(["import", "--from", "golang-migrate", str(src), str(tmp_path / "dest")]) == 0
    out = capsys.readouterr().out
    assert "0001_a.sql <- 1_a.up.sql, 1_a.down.sql: wrapping BEGIN/COMMIT removed from the up section" in out
    assert f"imported 1 migration(s) from golang-migrate into {tmp_path / 'dest'} (1 with notes)" in out
    assert main(["import", "--from", "golang-migrate", str(src), str(tmp_path / "again"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tool"] == "golang-migrate"
    assert data["migrations"][0]["file"] == "0001_a.sql"
    assert main(["import", "--from", "golang-migrate", str(src), str(tmp_path / "again")]) == 1


def test_the_runners_timeouts_set_in_sql_become_directives(tmp_path: Path) -> None:
    src = _files(
        tmp_path / "src",
        {
            "1_a.up.sql": "SET statement_timeout = 60000;\nCREATE TABLE a (id int);\n",
            "1_a.down.sql": "DROP TABLE a;\n",
            "2_b.up.sql": "SET LOCAL lock_timeout = '0';\nSELECT 1;\n",
            "2_b.down.sql": "",
        },
    )
    with pytest.raises(ImportRefused, match=r"2_b\.up\.sql: lock_timeout = '0' is not a duration above zero"):
        import_history("golang-migrate", src, tmp_path / "dest")
    (src / "2_b.up.sql").write_text("SET LOCAL lock_timeout = '10s';\nSELECT 1;\n")
    result = import_history("golang-migrate", src, tmp_path / "dest")
    a, b = _parsed(tmp_path / "dest")
    assert (a.directives.statement_timeout, a.directives.lock_timeout) == ("60000ms", None)
    assert (b.directives.lock_timeout, [s.kind for s in b.up]) == ("10s", ["SelectStmt"])
    assert result.mapping.migrations[1].notes == (
        "SET lock_timeout = 10s in the up section became '-- migrate:lock-timeout 10s'",
    )
    dbmate = _files(
        tmp_path / "dbmate", {"1_a.sql": "-- migrate:up\nSET LOCAL lock_timeout = '5s';\nSELECT 1;\n-- migrate:down\n"}
    )
    import_history("dbmate", dbmate, tmp_path / "from-dbmate")
    text = (tmp_path / "from-dbmate" / "0001_a.sql").read_text()
    assert text == "-- migrate:lock-timeout 5s\n-- migrate:up\n\nSELECT 1;\n-- migrate:down\n"
