"""Generated migration files: the engine's result equals psql's on a fresh database (hypothesis).

Each example is one file, transactional or ``transaction:false``: comments before the
``-- migrate:up`` line and between every two tokens
(``--`` lines, nested ``/* */`` blocks holding ``;``, quotes and ``$$``), values in every quoting
style (standard strings with backslashes and doubled quotes, ``E''`` escapes, dollar quotes with
and without tags), a ``-- comment`` before a statement's ``;`` on the next line, empty statements,
and a last statement with no ``;``, sometimes followed by a comment, in the up and in the down
section. psql applies the up section to one fresh database (inside BEGIN/COMMIT unless
non-transactional), ``commands.migrate`` the file to another; the rows, function sources and
results, and column defaults must be equal, and equal to the values the generator meant. Then
``rollback`` runs the down section, which must leave nothing behind, and ``migrate`` again must
give the same result.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from infra.migrations import commands
from infra.migrations.commands import MigrationContext
from tests.fixtures.corpus import PgTools, run_psql
from tests.fixtures.migrations import spec_for
from tests.fixtures.pg import AdminCluster, PgDatabase, create_database, drop_database

# no ':' anywhere outside a value (psql would read ':name' as a variable, '-- migrate:x' is a
# directive) and no backslash outside a value (a psql meta-command)
_COMMENT_CHARS = st.sampled_from(list("abc XYZ 09;'\"$-*/é"))
_VALUE_CHARS = st.sampled_from(list("ab Z;'\"\\$-*/\né?"))


@st.composite
def line_comment(draw: st.DrawFn) -> str:
    return "--" + draw(st.text(_COMMENT_CHARS, max_size=12)) + "\n"


@st.composite
def block_comment(draw: st.DrawFn) -> str:
    def body() -> str:
        return draw(st.text(_COMMENT_CHARS.filter(lambda c: c not in "*/"), max_size=10))

    inner = f"/*{body()}*/" if draw(st.booleans()) else ""  # PostgreSQL's block comments nest
    return f"/*{body()}{inner}{body()}*/"


# whitespace and comments: at least one piece, so two words never run together
gap = st.lists(st.sampled_from([" ", "\n", "\t"]) | line_comment() | block_comment(), min_size=1, max_size=3).map(
    "".join
)


@dataclass(frozen=True)
class Value:
    sql: str  # the literal as written in the file
    value: str  # the text it stands for


@st.composite
def standard_string(draw: st.DrawFn) -> Value:
    # standard_conforming_strings is on: a backslash is an ordinary character, only '' escapes
    text = draw(st.text(_VALUE_CHARS, max_size=12))
    return Value("'" + text.replace("'", "''") + "'", text)


@st.composite
def escape_string(draw: st.DrawFn) -> Value:
    pieces = draw(
        st.lists(
            st.sampled_from(
                [("\\\\", "\\"), ("\\'", "'"), ("''", "'"), ("\\n", "\n"), ("\\t", "\t"), ("\\x41", "A"), (";", ";")]
            )
            | st.text(_VALUE_CHARS.filter(lambda c: c not in "\\'"), min_size=1, max_size=4).map(lambda t: (t, t)),
            max_size=6,
        )
    )
    return Value("E'" + "".join(p[0] for p in pieces) + "'", "".join(p[1] for p in pieces))


def dollar_quote(text: str, tag: str) -> str | None:
    """``text`` in ``$tag$`` quotes, or None when the text would end the quote early."""
    closing = f"${tag}$"
    return f"{closing}{text}{closing}" if (text + closing).find(closing) == len(text) else None


dollar_string = (
    st.tuples(st.text(_VALUE_CHARS, max_size=12), st.sampled_from(["", "a", "x_1", "tag"]))
    .filter(lambda tt: dollar_quote(*tt) is not None)
    .map(lambda tt: Value(str(dollar_quote(*tt)), tt[0]))
)


value = standard_string() | escape_string() | dollar_string


def quote_as(text: str, style: str) -> str:
    """``text`` as a literal in ``style`` (the body of a function)."""
    if style == "dollar":
        for tag in ("body", "body_1", "b2"):
            quoted = dollar_quote(text, tag)
            if quoted is not None:
                return quoted
    if style == "escape":
        return "E'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Statement:
    tokens: tuple[str, ...]  # joined by generated gaps
    row: tuple[int, str] | None = None  # (n, v) it inserts into t
    function: tuple[str, str] | None = None  # (name, what it returns)
    default: tuple[str, str] | None = None  # (table, default text value)


@st.composite
def statement(draw: st.DrawFn, i: int) -> Statement:
    v = draw(value)
    kind = draw(st.sampled_from(["insert", "do", "function", "table"]))
    if kind == "insert":
        return Statement(
            ("INSERT", "INTO", "t", "(", "n", ",", "v", ")", "VALUES", "(", str(i), ",", v.sql, ")"), (i, v.value)
        )
    if kind == "do":
        body = f" BEGIN INSERT INTO t VALUES ({i}, {v.sql}); END "
        quoted = dollar_quote(body, "do") or dollar_quote(body, "do_1") or quote_as(body, "standard")
        return Statement(("DO", quoted), row=(i, v.value))
    if kind == "function":
        body = quote_as(f"SELECT {v.sql}", draw(st.sampled_from(["dollar", "escape", "standard"])))
        name = f"f{i}"
        tokens = ("CREATE", "FUNCTION", name, "(", ")", "RETURNS", "text", "LANGUAGE", "sql", "AS", body)
        return Statement(tokens, function=(name, v.value))
    return Statement(("CREATE", "TABLE", f"t{i}", "(", "v", "text", "DEFAULT", v.sql, ")"), default=(f"t{i}", v.value))


@dataclass(frozen=True)
class Generated:
    text: str  # the migration file
    up_text: str  # what dbmate calls the up section: the file up to the down directive, for psql
    transactional: bool
    statements: tuple[Statement, ...]


def drops(stmts: list[Statement]) -> list[Statement]:
    """The down section: drop what the up section created, newest first."""
    out = [Statement(("DROP", "FUNCTION", s.function[0], "(", ")")) for s in stmts if s.function]
    out += [Statement(("DROP", "TABLE", s.default[0])) for s in stmts if s.default]
    return [*reversed(out), Statement(("DROP", "TABLE", "t"))]


@st.composite
def section(draw: st.DrawFn, stmts: list[Statement]) -> str:
    """Statements with gaps between all tokens and varied endings; the last may have no ';'."""
    parts = []
    for k, stmt in enumerate(stmts):
        parts.append(draw(st.sampled_from(["", " ", "\n"]) | gap))
        parts.append(draw(gap).join(stmt.tokens))
        last = k == len(stmts) - 1
        endings = (
            ["omit", ";", "comment-then-semicolon", ";;", "; -- after\n"]
            if last
            else [";", "comment-then-semicolon", ";;"]
        )
        ending = draw(st.sampled_from(endings))
        if ending == "omit":  # no final ';', perhaps a comment after it
            parts.append(draw(st.sampled_from(["", "\n", " -- trailing\n", "\n/* end */"])))
        elif ending == "comment-then-semicolon":
            parts.append(draw(line_comment()) + ";")
        else:
            parts.append(ending)
    return "".join(parts)


@st.composite
def migration_file(draw: st.DrawFn) -> Generated:
    stmts = [Statement(("CREATE", "TABLE", "t", "(", "n", "int", "PRIMARY", "KEY", ",", "v", "text", ")"))]
    stmts += [draw(statement(i)) for i in range(1, draw(st.integers(1, 5)) + 1)]
    transactional = draw(st.booleans())
    # before the up line dbmate allows only blank and '--' lines (ErrParseUnexpectedStmt otherwise)
    head = draw(st.sampled_from(["", "-- a header comment\n", "\n--x; 'y'\n\n"]))
    up = head + "-- migrate:up" + ("" if transactional else " transaction:false") + "\n" + draw(section(stmts)) + "\n"
    down = "-- migrate:down\n" + draw(section(drops(stmts))) + draw(st.sampled_from(["", "\n", "\n-- the end\n"]))
    return Generated(up + down, up, transactional, tuple(stmts))


def observe(db: PgDatabase) -> dict[str, Any]:
    """What the file did: rows of t, each function's source and result, each column default."""
    with db.connect_superuser(autocommit=True) as conn:
        functions = conn.execute(
            "SELECT proname, prosrc FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY proname"
        ).fetchall()
        return {
            "rows": conn.execute("SELECT n, v FROM t ORDER BY n").fetchall(),
            "functions": functions,
            "results": [
                conn.execute(sql.SQL("SELECT {}()").format(sql.Identifier(name))).fetchone() for name, _ in functions
            ],
            "defaults": conn.execute(
                "SELECT table_name, column_default FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name <> 't' ORDER BY table_name"
            ).fetchall(),
        }


def public_objects(db: PgDatabase) -> int:
    with db.connect_superuser(autocommit=True) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace)"
            " + (SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace)"
        ).fetchone()
        assert row is not None
        return int(row[0])


def default_value(db: PgDatabase, table: str) -> str:
    with db.connect_superuser(autocommit=True) as conn:
        row = conn.execute(
            sql.SQL("INSERT INTO {} DEFAULT VALUES RETURNING v").format(sql.Identifier(table))
        ).fetchone()
        assert row is not None
        return str(row[0])


@settings(
    max_examples=15,  # two fresh databases per example: about 1 s each on a busy 2-core machine
    deadline=None,
    database=None,  # nothing written into the work tree; a failure prints its example
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(generated=migration_file())
def test_generated_file_applies_as_psql_does(generated: Generated, pg_cluster: AdminCluster, pg_tools: PgTools) -> None:
    with tempfile.TemporaryDirectory(prefix="gen-") as tmp:
        migrations, psql_dir = Path(tmp) / "migrations", Path(tmp) / "psql"
        migrations.mkdir()
        psql_dir.mkdir()
        path = migrations / "0001_generated.sql"
        path.write_text(generated.text, encoding="utf-8")
        (psql_dir / path.name).write_text(generated.up_text, encoding="utf-8")
        oracle, ours = create_database(pg_cluster), create_database(pg_cluster)
        try:
            run_psql(pg_tools, oracle, [psql_dir / path.name], [generated.transactional])
            expected = observe(oracle)
            # both did what the generator meant
            assert expected["rows"] == sorted(s.row for s in generated.statements if s.row)
            wanted = sorted(s.function for s in generated.statements if s.function)
            assert [(name, r) for (name, _), r in zip(expected["functions"], expected["results"], strict=True)] == [
                (name, (v,)) for name, v in wanted
            ]
            for s in generated.statements:
                if s.default:
                    assert default_value(oracle, s.default[0]) == s.default[1]

            context = MigrationContext(connection=spec_for(ours), migrations_dir=migrations)
            assert len(commands.migrate(context).applied) == 1
            assert observe(ours) == expected, generated.text
            assert [r.filename for r in commands.status(context).applied] == [path.name]

            # the down section drops everything; applying again gives the same result
            assert len(commands.rollback(context, to=0).rolled_back) == 1
            assert public_objects(ours) == 0, generated.text
            assert commands.status(context).applied == ()
            assert len(commands.migrate(context).applied) == 1
            assert observe(ours) == expected, generated.text
        finally:
            drop_database(oracle)
            drop_database(ours)
