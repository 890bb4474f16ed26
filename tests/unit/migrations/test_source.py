"""Migration files: names and versions, dbmate's format, directives, checksums, refusals with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.errors import MigrationParseError
from infra.migrations.source import checksum, load, manifest, parse, version_of


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_parse_sections_directives_and_statements(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "0007_add_things.sql",
        "-- header comment\n"
        "-- migrate:up\n"
        "-- migrate:lock-timeout 10s\n"
        "-- migrate:statement-timeout 2min\n"
        "-- migrate:allow prefer-bigint-over-int ban-drop-column\n"
        "CREATE TABLE a (id int, s text DEFAULT 'x;y');\n"
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;\n"
        "CREATE FUNCTION g() RETURNS int AS $b$ select 1; -- migrate:down\n"
        " $b$ LANGUAGE sql;\n"
        "/* block ; */ INSERT INTO a VALUES (1, E'it\\'s;')\n"
        "-- migrate:down\n"
        "DROP TABLE a;\n",
    )
    mig = parse(path)
    assert (mig.version, mig.name, mig.label) == (7, "add_things", "0007_add_things")
    assert mig.directives.lock_timeout == "10s"
    assert mig.directives.statement_timeout == "2min"
    assert mig.directives.allow == {"prefer-bigint-over-int", "ban-drop-column"}
    assert not mig.directives.no_transaction
    assert [s.line for s in mig.up] == [6, 7, 8, 10]
    assert mig.up[1].text.endswith("SELECT 2; END")
    assert "-- migrate:down" in mig.up[2].text  # not at column 0, and inside a dollar quote: SQL
    assert mig.up[3].text.endswith("E'it\\'s;')")
    assert [s.text for s in mig.down] == ["DROP TABLE a"]
    assert mig.reversible
    assert mig.checksum == checksum(path)


def test_checksum_ignores_bom_and_line_endings_only(tmp_path: Path) -> None:
    text = "-- migrate:up\nSELECT 1;\n"
    a = _write(tmp_path, "0001_a.sql", text)
    b = tmp_path / "0002_b.sql"
    b.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    c = _write(tmp_path, "0003_c.sql", text + " ")
    assert checksum(a) == checksum(b) == parse(b).checksum
    assert checksum(a) != checksum(c)
    assert manifest(tmp_path)[0] == f"0001_a.sql:{checksum(a)}"


def test_a_crlf_file_keeps_its_bytes_in_the_sql_and_its_lines(tmp_path: Path) -> None:
    # psql and dbmate send the file as written: the CRLF inside the literal is data (zabbix's data.sql)
    path = tmp_path / "0001_crlf.sql"
    path.write_bytes(
        b"-- migrate:up transaction:false\r\nSELECT 1;\r\nSELECT 'a\r\nb';\r\n-- migrate:down\r\nSELECT 3;\r\n"
    )
    mig = parse(path)
    assert mig.directives.no_transaction
    assert [(s.line, s.text) for s in mig.up] == [(2, "SELECT 1"), (3, "SELECT 'a\r\nb'")]
    assert [s.text for s in mig.down] == ["SELECT 3"]
    lf = _write(tmp_path, "0002_lf.sql", path.read_bytes().replace(b"\r\n", b"\n").decode())
    assert mig.checksum == checksum(lf) == checksum(path)
    assert [s.sha256 for s in mig.up] == [s.sha256 for s in parse(lf).up]  # a resume check ignores line ends


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("SELECT 1;\n", r"0001_x\.sql:1: no '-- migrate:up'"),
        ("SELECT 1;\n-- migrate:up\nSELECT 2;\n", r"0001_x\.sql:1: SQL before '-- migrate:up'"),
        ("/* licence */\n-- migrate:up\nSELECT 2;\n", r"0001_x\.sql:1: SQL before '-- migrate:up'"),
        ("-- migrate:up\n-- migrate:up\nSELECT 1;\n", r"0001_x\.sql:2: directive 'migrate:up' repeated"),
        ("-- migrate:down\nSELECT 1;\n-- migrate:up\n", r"0001_x\.sql:1: '-- migrate:down' comes before"),
        ("-- migrate:up\n-- migrate:frobnicate\nSELECT 1;\n", r"0001_x\.sql:2: unknown directive 'migrate:frobnicate'"),
        ("-- migrate:up\n-- migrate:lock-timeout soon\nSELECT 1;\n", r"0001_x\.sql:2: 'migrate:lock-timeout' needs"),
        ("-- migrate:up\n-- migrate:lock-timeout 0s\nSELECT 1;\n", r"0001_x\.sql:2: .* above zero"),
        ("-- migrate:up\n-- migrate:no-transaction yes\nSELECT 1;\n", r"0001_x\.sql:2: .* takes no argument"),
        ("-- migrate:up transaction:FALSE\nSELECT 1;\n", r"0001_x\.sql:1: 'transaction:FALSE' is neither"),
        ("-- migrate:up foo:bar\nSELECT 1;\n", r"0001_x\.sql:1: unknown option 'foo:bar'"),
        ("-- migrate:up\nSELECT 'open;\n", r"0001_x\.sql:2: unterminated quoted string"),
        ("-- migrate:up\nSELECT 1;\nCOMMIT;\n", r"0001_x\.sql:3: transaction control"),
        ("-- migrate:up\nBEGIN;\nSELECT 1;\n", r"0001_x\.sql:2: transaction control"),
        (
            "-- migrate:up\nCREATE INDEX CONCURRENTLY i ON t (a);\n",
            r"0001_x\.sql:2: this statement cannot run inside a transaction; fix: add transaction:false to its "
            r"'-- migrate:up' line",
        ),
        (
            "-- migrate:up\nSELECT 1;\n-- migrate:down\nDROP INDEX CONCURRENTLY i;\n",
            r"0001_x\.sql:4: .* add transaction:false to its '-- migrate:down' line",
        ),
        ("-- migrate:up\nVACUUM t;\n", r"0001_x\.sql:2: this statement cannot run inside a transaction"),
        ("-- migrate:up\nSELECT 1;\n\\i other.sql\n", r"0001_x\.sql:3: psql meta-commands"),
        ("-- migrate:up transaction:false\nDISCARD ALL;\n", r"0001_x\.sql:2: discard would release"),
        ("-- migrate:up\nCOPY t (a) FROM stdin;\n", r"0001_x\.sql:2: copy from stdin"),
        ("-- migrate:up\n-- migrate:irreversible\nSELECT 1;\n-- migrate:down\nSELECT 2;\n", r"0001_x\.sql:2: marked"),
        ("-- migrate:up\nSELECT 1;\n-- migrate:no-transaction\n-- migrate:down transaction:false\n", r"both given"),
    ],
)
def test_parse_errors_name_file_and_line(tmp_path: Path, text: str, error: str) -> None:
    with pytest.raises(MigrationParseError, match=error):
        parse(_write(tmp_path, "0001_x.sql", text))


def test_dbmate_transaction_false_on_up_and_down_separately(tmp_path: Path) -> None:
    mig = parse(
        _write(
            tmp_path,
            "0001_x.sql",
            "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON t (a);\nVACUUM t;\n"
            "-- migrate:down\nDROP TABLE t;\n",
        )
    )
    assert mig.directives.no_transaction
    assert (mig.up_section.transaction, mig.down_section and mig.down_section.transaction) == (False, True)
    down_only = parse(
        _write(tmp_path, "0002_y.sql", "-- migrate:up\nSELECT 1;\n--migrate:down   transaction:false\nVACUUM t;\n")
    )
    assert not down_only.directives.no_transaction
    assert down_only.down_section is not None
    assert not down_only.down_section.transaction
    tx = parse(_write(tmp_path, "0003_z.sql", "-- migrate:up\nSAVEPOINT s;\nSELECT 1;\nROLLBACK TO SAVEPOINT s;\n"))
    assert len(tx.up) == 3
    # outside a transaction a savepoint fails on the server after the statements before it ran: refused first
    with pytest.raises(MigrationParseError, match=r"0004_w\.sql:3: a savepoint needs a transaction.*remove it"):
        parse(_write(tmp_path, "0004_w.sql", "-- migrate:up transaction:false\nSELECT 1;\nSAVEPOINT s;\n"))
    with pytest.raises(MigrationParseError, match=r"0005_v\.sql:5: a savepoint needs.*'-- migrate:down' line"):
        parse(
            _write(
                tmp_path,
                "0005_v.sql",
                "-- migrate:up\nSELECT 1;\n-- migrate:down transaction:false\nSELECT 2;\nRELEASE s;\n",
            )
        )


def test_empty_sections_are_noops_and_irreversibility_is_explicit(tmp_path: Path) -> None:
    empty = parse(_write(tmp_path, "0001_a.sql", "-- migrate:up\n-- nothing yet\n-- migrate:down\n/* nothing */\n"))
    assert empty.up_section.empty
    assert empty.down_section is not None
    assert empty.down_section.empty
    assert empty.reversible  # an empty down section is a no-op rollback
    marked = parse(_write(tmp_path, "0002_b.sql", "-- migrate:up\nSELECT 1;\n-- migrate:irreversible drops data\n"))
    assert not marked.reversible
    assert marked.irreversible_reason() == "0002_b.sql is marked '-- migrate:irreversible' (line 3)"
    no_down = parse(_write(tmp_path, "0003_c.sql", "-- migrate:up\nSELECT 1;\n"))
    assert no_down.irreversible_reason() == "0003_c.sql has no '-- migrate:down' section"
    # indented, the marker is a comment (dbmate reads directives at column 0 only)
    indented = parse(_write(tmp_path, "0004_d.sql", "-- migrate:up\nSELECT 1;\n  -- migrate:down\nSELECT 2;\n"))
    assert indented.down_section is None
    assert len(indented.up) == 2


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"-- migrate:up\nSELECT 1;\nSELECT '\x00';\n", r"0001_x\.sql:3: nul byte in the file; fix: remove it"),
        (b"-- migrate:up\n\nSELECT '\xff';\n", r"0001_x\.sql:3: not valid utf-8; fix: save the file as UTF-8"),
    ],
)
def test_nul_bytes_and_invalid_utf8_are_refused_with_the_line(tmp_path: Path, raw: bytes, error: str) -> None:
    path = tmp_path / "0001_x.sql"
    path.write_bytes(raw)
    with pytest.raises(MigrationParseError, match=error):
        parse(path)


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("0001_a.sql", 1),
        ("000001_x.sql", 1),
        ("20230101120000_CreateUsers.sql", 20230101120000),
        ("12345678901234567890_big.sql", 12345678901234567890),
        ("000020.sql", 20),
        ("7_with-hyphen.sql", 7),
    ],
)
def test_versions_are_ascii_digits_of_any_length(name: str, version: int) -> None:
    assert version_of(name) == version


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("0008_x.SQL", r"0008_x\.SQL: .* ends in '\.sql' \(lowercase\); fix: rename it to '0008_x\.sql'"),
        ("\u0660\u0660\u0660\u0668_x.sql", r": the version must be ASCII digits 0-9; fix: rename it to '0008_x\.sql'"),
        ("notes.txt", r"notes\.txt: not a migration file name .*; fix: rename it like 0001_create_users\.sql"),
        ("0009_bad name.sql", r"the slug may hold only letters, digits, '_' and '-'"),
    ],
)
def test_other_names_are_refused_with_the_fix(name: str, error: str) -> None:
    with pytest.raises(MigrationParseError, match=error):
        version_of(name)


def test_load_keeps_going_past_broken_files_and_orders_numerically(tmp_path: Path) -> None:
    _write(tmp_path, "10_b.sql", "-- migrate:up\nSELECT 10;\n")
    _write(tmp_path, "9_a.sql", "-- migrate:up\nSELECT 9;\n")
    _write(tmp_path, "11_c.sql", "-- migrate:up\nSELEC 11;\n")
    _write(tmp_path, "0012_d.sql", "-- migrate:up\nSELECT 12;\n")
    _write(tmp_path, "12_e.sql", "-- migrate:up\nSELECT 12;\n")
    _write(tmp_path, "0013_f.SQL", "-- migrate:up\nSELECT 13;\n")
    _write(tmp_path, ".hidden", "ignored")
    source = load(tmp_path)
    assert [m.filename for m in source.migrations] == ["9_a.sql", "10_b.sql"]
    broken = {b.filename: (b.version, str(b.error)) for b in source.broken}
    assert broken["11_c.sql"] == (11, '11_c.sql:2: syntax error at or near "SELEC"')
    assert broken["0012_d.sql"][1] == "0012_d.sql: version 12 is also used by 12_e.sql; fix: renumber one of them"
    assert broken["12_e.sql"][0] == 12
    assert broken["0013_f.SQL"][0] is None
    assert load(tmp_path / "absent").migrations == ()
