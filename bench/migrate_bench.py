"""Benchmark: this runner beside dbmate (and yoyo-migrations, Alembic) in one run.

    venv/bin/python bench/migrate_bench.py [--n 200] [--delay-ms 10] [--tls] [--tools ours,yoyo,alembic,dbmate]
                                           [--history litellm] [--parse-statements 32000]

Three parts, each tool as its own process (as a user runs it) against a fresh database of one
embedded PostgreSQL 16, through tests/fixtures/proxy.py, which counts round trips (each time the
client speaks after the server did) and, in the second pass, adds ``--delay-ms`` at every change
of direction (a distant tunnel: a round trip costs two delays). Wall time is the process's, start
to exit, so it includes interpreter start-up; infra/ is compiled to bytecode first (as pip does on
install), so that start-up is a user's steady state even where PYTHONDONTWRITEBYTECODE is set.

1. ``--n`` generated migrations, each a table and an index, with every tool in ``--tools``.
2. A real history (``--history``, from tests/fixtures/corpus.py: installed from its registry,
   laid out in our format with the empty down section dbmate needs), this runner and dbmate.
3. Parsing: one file of ``--parse-statements`` INSERTs (2.4 MB, non-ASCII in every row):
   this runner's parser in-process, then ``status`` and ``migrate`` of the file, ours and dbmate's.

By default the tools connect without TLS (SCRAM password auth still) so that the round-trip
counts show the migration protocol: TLS adds three round trips per connection for every tool.
``--tls`` runs everything with sslmode=verify-full instead. The table goes to stdout and to
bench/RESULTS.md with the command that produced it. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.local.pg import LocalPostgres  # noqa: E402
from infra.migrations import source  # noqa: E402
from tests.fixtures.corpus import DBMATE, HISTORIES, layout, load_history  # noqa: E402
from tests.fixtures.proxy import TcpProxy  # noqa: E402

DBMATE_VERSION = "2.36.0"  # the Makefile's DBMATE_VERSION (make corpus-deps installs it)
WORK = ROOT / "bench" / ".work"
USER = "bench"
PASSWORD = "bench-password-not-secret"  # a throwaway local cluster
TOOLS = ("ours", "yoyo", "alembic", "dbmate")


@dataclasses.dataclass(frozen=True)
class Run:
    tool: str
    delay_ms: float
    seconds: float
    round_trips: int
    connections: int
    tables: int
    samples: tuple[float, ...] = ()  # every timed run when repeated (``seconds`` is their median)


def table_sql(i: int) -> tuple[str, str]:
    t = f"bench_{i:04d}"
    up = (
        f"CREATE TABLE {t} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL, "
        f"created_at timestamptz NOT NULL DEFAULT now());\n"
        f"CREATE INDEX {t}_name ON {t} (name);"
    )
    return up, f"DROP TABLE {t};"


def generate(n: int, root: Path) -> dict[str, Path]:
    """The same N migrations in each tool's own format."""
    dirs = {name: root / name for name in ("sql", "yoyo", "alembic")}
    for d in dirs.values():
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    versions = dirs["alembic"] / "versions"
    versions.mkdir()
    (dirs["alembic"] / "env.py").write_text(
        textwrap.dedent(
            """\
            from alembic import context
            from sqlalchemy import create_engine, pool

            engine = create_engine(context.config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
            with engine.connect() as connection:
                context.configure(connection=connection, transaction_per_migration=True)
                with context.begin_transaction():
                    context.run_migrations()
            """
        )
    )
    for i in range(1, n + 1):
        up, down = table_sql(i)
        # this runner and dbmate read the same file format
        (dirs["sql"] / f"{i:04d}_create_bench_{i:04d}.sql").write_text(
            f"-- migrate:up\n{up}\n-- migrate:down\n{down}\n"
        )
        (dirs["yoyo"] / f"{i:04d}_create_bench_{i:04d}.sql").write_text(up + "\n")
        prev = f"'r{i - 1:04d}'" if i > 1 else "None"
        stmts = "\n".join(f"    op.execute({s.strip()!r})" for s in up.split(";\n"))
        (versions / f"r{i:04d}.py").write_text(
            f"from alembic import op\n\nrevision = 'r{i:04d}'\ndown_revision = {prev}\n"
            f"branch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n{stmts}\n\n\n"
            f"def downgrade():\n    op.execute({down!r})\n"
        )
    return dirs


def compile_bytecode() -> None:
    """Write infra/'s .pyc files, as ``pip install`` does and as Python does on a first run; without
    them (PYTHONDONTWRITEBYTECODE=1 on the machine that runs this) every ``python -m infra`` would
    compile its modules from source, ~0.1 s that no installed copy pays."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "infra")], check=True)


def ensure_dbmate() -> Path:
    """dbmate's own Go binary (npm's package ships it per platform; the ``bin`` entry is a node
    launcher that adds about 60 ms of start-up, which would flatter this runner)."""
    if not DBMATE.exists():
        raise SystemExit(f"dbmate is not installed at {DBMATE}; fix: make corpus-deps")
    binaries = sorted(DBMATE.parents[1].glob("@dbmate/*/bin/dbmate"))
    return binaries[0] if binaries else DBMATE


def generate_parse_file(statements: int, directory: Path) -> Path:
    """One migration of ``statements`` INSERTs, a table first: about 74 bytes a line with é, ; and -- in
    the values (32k statements: 2.4 MB)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    lines = ["-- migrate:up", "CREATE TABLE big (id int PRIMARY KEY, name text NOT NULL, note text);"]
    lines += [f"INSERT INTO big (id, name, note) VALUES ({i}, 'é {i}', '; -- {i}');" for i in range(statements)]
    lines += ["-- migrate:down", "DROP TABLE big;", ""]
    path = directory / "0001_big.sql"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def start_cluster(tls: bool) -> LocalPostgres:
    cluster = LocalPostgres(WORK / "pg", server_names=("localhost",))
    cluster.start()
    with psycopg.connect(cluster.superuser_conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(USER)))
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(sql.Identifier(USER), sql.Literal(PASSWORD))
        )
        if not tls:
            # loopback only, for this throwaway cluster: measure the protocol, not the TLS handshake
            hba = cluster.data / "pg_hba.conf"
            hba.write_text("host all all 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
            conn.execute("SELECT pg_reload_conf()")
    return cluster


def fresh_db(cluster: LocalPostgres, name: str) -> None:
    with psycopg.connect(cluster.superuser_conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(USER)))


def count_tables(cluster: LocalPostgres, db: str) -> int:
    with psycopg.connect(cluster.superuser_conninfo(db)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND indexname LIKE 'bench\\_%\\_name'"
        ).fetchone()
        return int(row[0]) if row else 0


def count_relations(cluster: LocalPostgres, db: str) -> int:
    """Tables, indexes, sequences and views outside the catalogs and both tools' ledgers."""
    with psycopg.connect(cluster.superuser_conninfo(db)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'migrations_ledger') "
            "AND c.relname NOT IN ('schema_migrations', 'schema_migrations_pkey')"
        ).fetchone()
        return int(row[0]) if row else 0


def command(
    tool: str,
    port: int,
    db: str,
    dirs: dict[str, Path],
    tls: bool,
    cluster: LocalPostgres,
    dbmate: Path | None,
    verb: str = "migrate",
) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSWORD"] = PASSWORD  # libpq (ours, yoyo, alembic) and lib/pq (dbmate) read it
    ssl = f"sslmode=verify-full&sslrootcert={cluster.tls.ca_cert}" if tls else "sslmode=disable"
    url = f"{USER}@127.0.0.1:{port}/{db}?{ssl}"
    py = sys.executable
    if tool == "ours":
        argv = [
            py,
            "-m",
            "infra",
            verb,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dbname",
            db,
            "--user",
            USER,
            "--migrations-dir",
            str(dirs["sql"]),
        ]
        argv += (
            ["--sslmode", "verify-full", "--sslrootcert", str(cluster.tls.ca_cert)] if tls else ["--sslmode", "disable"]
        )
        env["PYTHONPATH"] = str(ROOT)
        return argv, env
    if tool == "yoyo":
        yoyo = Path(py).parent / "yoyo"
        return [
            str(yoyo),
            "apply",
            "--batch",
            "--no-config-file",
            "--database",
            f"postgresql+psycopg://{url}",
            str(dirs["yoyo"]),
        ], env
    if tool == "alembic":
        ini = dirs["alembic"] / "alembic.ini"
        ini.write_text(
            f"[alembic]\nscript_location = {dirs['alembic']}\n"
            f"sqlalchemy.url = postgresql+psycopg://{url.replace('%', '%%')}\n"
        )
        return [str(Path(py).parent / "alembic"), "-c", str(ini), "upgrade", "head"], env
    if tool == "dbmate":
        assert dbmate is not None
        env["DATABASE_URL"] = f"postgres://{url}"
        return [str(dbmate), "--migrations-dir", str(dirs["sql"]), "--no-dump-schema", verb], env
    raise ValueError(tool)


def timed(
    tool: str,
    cluster: LocalPostgres,
    dirs: dict[str, Path],
    delay_ms: float,
    tls: bool,
    dbmate: Path | None,
    db: str,
    verb: str = "migrate",
) -> tuple[float, int, int]:
    """Run one tool's ``verb`` through the proxy: (wall seconds, round trips, connections)."""
    with TcpProxy("127.0.0.1", cluster.port, delay=delay_ms / 1000) as proxy:
        argv, env = command(tool, proxy.port, db, dirs, tls, cluster, dbmate, verb)
        started = time.perf_counter()
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        proxy.wait_closed()
        stats = proxy.stats()
    if result.returncode != 0:
        raise SystemExit(
            f"{tool} {verb} failed (exit {result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        )
    return seconds, stats.round_trips, stats.connections


def run_tool(
    tool: str, cluster: LocalPostgres, dirs: dict[str, Path], delay_ms: float, n: int, tls: bool, dbmate: Path | None
) -> Run:
    db = f"bench_{tool}_{int(delay_ms)}"
    fresh_db(cluster, db)
    seconds, round_trips, connections = timed(tool, cluster, dirs, delay_ms, tls, dbmate, db)
    tables = count_tables(cluster, db)
    if tables != n:
        raise SystemExit(f"{tool}: expected {n} tables with their index, found {tables}")
    return Run(tool, delay_ms, seconds, round_trips, connections, tables)


def run_history(
    tool: str, cluster: LocalPostgres, directory: Path, delay_ms: float, tls: bool, dbmate: Path | None, rep: int = 0
) -> Run:
    """Apply the real history; ``tables`` is the number of relations it made (both tools must agree)."""
    db = f"hist_{tool}_{int(delay_ms)}_{rep}"
    fresh_db(cluster, db)
    seconds, round_trips, connections = timed(tool, cluster, {"sql": directory}, delay_ms, tls, dbmate, db)
    return Run(tool, delay_ms, seconds, round_trips, connections, count_relations(cluster, db))


def server_floor(cluster: LocalPostgres, directory: Path, rep: int) -> float:
    """The server's own work for the files, as near as a client gets: an in-process connection
    (through the same proxy), each file prebuilt as one ``BEGIN; <file>; COMMIT`` message (a
    ``transaction:false`` file's statements each alone), no ledger, no checks; seconds to send them all."""
    migrations = source.load(directory).migrations
    messages = [
        ["BEGIN;\n" + "".join(st.text + "\n;\n" for st in m.up) + "COMMIT"]  # a line comment ends a statement
        if not m.directives.no_transaction
        else [st.text for st in m.up]
        for m in migrations
    ]
    db = f"floor_{rep}"
    fresh_db(cluster, db)
    with TcpProxy("127.0.0.1", cluster.port) as proxy:
        conninfo = f"host=127.0.0.1 port={proxy.port} dbname={db} user={USER} sslmode=disable"
        with psycopg.connect(conninfo, password=PASSWORD, autocommit=True) as conn:
            started = time.perf_counter()
            for texts in messages:
                for text in texts:
                    conn.execute(text.encode())
            return time.perf_counter() - started


def median_run(runs: list[Run]) -> Run:
    """One run standing for several of one tool: the median wall, every sample kept."""
    walls = sorted(r.seconds for r in runs)
    return dataclasses.replace(runs[0], seconds=statistics.median(walls), samples=tuple(r.seconds for r in runs))


@dataclasses.dataclass(frozen=True)
class ParseRun:
    statements: int
    megabytes: float
    parse_seconds: float  # this runner's parser, in-process, best of 3
    status: dict[str, float]  # tool -> wall of `status` on the unapplied file
    migrate: dict[str, float]  # tool -> wall of `migrate` of the file, loopback


def run_parse(cluster: LocalPostgres, statements: int, tls: bool, dbmate: Path | None, tools: list[str]) -> ParseRun:
    directory = WORK / "parse"
    path = generate_parse_file(statements, directory)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        loaded = source.load(directory)
        best = min(best, time.perf_counter() - started)
    if loaded.broken:
        raise SystemExit(f"parse: {loaded.broken[0].describe()}")
    found = sum(len(m.up) for m in loaded.migrations)
    if found != statements + 1:
        raise SystemExit(f"parse: expected {statements + 1} statements, got {found}")
    status: dict[str, float] = {}
    migrate: dict[str, float] = {}
    for tool in tools:
        db = f"parse_{tool}"
        fresh_db(cluster, db)
        status[tool] = timed(tool, cluster, {"sql": directory}, 0.0, tls, dbmate, db, "status")[0]
        migrate[tool] = timed(tool, cluster, {"sql": directory}, 0.0, tls, dbmate, db, "migrate")[0]
        with psycopg.connect(cluster.superuser_conninfo(db)) as conn:
            row = conn.execute("SELECT count(*) FROM big").fetchone()
        if not row or row[0] != statements:
            raise SystemExit(f"parse: {tool} inserted {row[0] if row else 0} rows, expected {statements}")
    return ParseRun(statements, path.stat().st_size / 1e6, best, status, migrate)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def render_generated(runs: list[Run], n: int, delay_ms: float) -> list[str]:
    loop = {r.tool: r for r in runs if r.delay_ms == 0}
    slow = {r.tool: r for r in runs if r.delay_ms == delay_ms}
    lines = [
        f"## 1. {n} generated migrations (a table and an index each)",
        "",
        f"| tool | round trips | connections | round trips / migration | wall, loopback (s) "
        f"| wall, +{delay_ms:g} ms per turn (s) | vs dbmate (delayed) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    base = slow.get("dbmate")
    for tool in TOOLS:
        if tool not in loop:
            continue
        r, s = loop[tool], slow.get(tool)
        ratio = f"{s.seconds / base.seconds:.2f}x" if s and base else "-"
        delayed = f"{s.seconds:.2f}" if s else "-"
        lines.append(
            f"| {label(tool)} | {r.round_trips} | {r.connections} | {r.round_trips / n:.2f} | "
            f"{r.seconds:.2f} | {delayed} | {ratio} |"
        )
    lines.append("")
    ours, ours_slow = loop.get("ours"), slow.get("ours")
    if ours:
        lines.append(
            f"- target round trips <= N + 5 = {n + 5}: {ours.round_trips} ({verdict(ours.round_trips <= n + 5)})"
        )
    if ours_slow and base:
        slow_ratio = ours_slow.seconds / base.seconds
        lines.append(f"- target delayed wall <= 0.5x dbmate: {slow_ratio:.2f}x ({verdict(slow_ratio <= 0.5)})")
    return lines


def render_history(
    runs: list[Run],
    history: str,
    files: int,
    nontx: int,
    delay_ms: float,
    idle: dict[str, list[float]],
    floor: float,
) -> list[str]:
    loop = {r.tool: r for r in runs if r.delay_ms == 0}
    slow = {r.tool: r for r in runs if r.delay_ms == delay_ms}
    h = HISTORIES[history]
    lines = [
        f"## 2. A real history: {history} ({h.registry} `{h.package}`), {files} files, {nontx} non-transactional",
        "",
        "Laid out by tests/fixtures/corpus.py (`-- migrate:up`, `transaction:false` where the upstream runner "
        "applies a file outside a transaction, an empty `-- migrate:down` because dbmate requires one).",
        "",
        f"| tool | relations made | round trips | connections | round trips / migration | wall, loopback (s) "
        f"| vs dbmate | wall, +{delay_ms:g} ms per turn (s) | vs dbmate |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base_loop, base_slow = loop.get("dbmate"), slow.get("dbmate")
    for tool in ("ours", "dbmate"):
        if tool not in loop:
            continue
        r, s = loop[tool], slow.get(tool)
        vs_loop = f"{r.seconds / base_loop.seconds:.2f}x" if base_loop else "-"
        delayed = f"{s.seconds:.2f}" if s else "-"
        vs_slow = f"{s.seconds / base_slow.seconds:.2f}x" if s and base_slow else "-"
        lines.append(
            f"| {label(tool)} | {r.tables} | {r.round_trips} | {r.connections} | {r.round_trips / files:.2f} | "
            f"{r.seconds:.2f} | {vs_loop} | {delayed} | {vs_slow} |"
        )
    lines.append("")
    ours, ours_slow = loop.get("ours"), slow.get("ours")
    if ours:
        per = ours.round_trips / files
        lines.append(f"- goal round trips per migration <= 1.05: {per:.3f} ({verdict(per <= 1.05)})")
    if ours and base_loop:
        ratio = ours.seconds / base_loop.seconds
        lines.append(
            f"- goal loopback wall <= 1.0x dbmate (Python start-up included): {ratio:.2f}x ({verdict(ratio <= 1.0)})"
        )
    if ours_slow and base_slow:
        ratio = ours_slow.seconds / base_slow.seconds
        lines.append(
            f"- goal wall at +{delay_ms:g} ms per turn <= 0.25x dbmate: {ratio:.2f}x ({verdict(ratio <= 0.25)})"
        )
    for tool in ("ours", "dbmate"):
        if tool in loop and loop[tool].samples:
            walls = ", ".join(f"{x:.2f}" for x in loop[tool].samples)
            lines.append(f"- {label(tool)}, loopback runs (s, alternating with the other tool; median above): {walls}")
    if idle.get("ours") and idle.get("dbmate") and ours and base_loop:
        fixed = {tool: statistics.median(walls) for tool, walls in idle.items()}
        lines.append(
            f"- the same command again with nothing left to apply (start-up, reading the files, connecting, the "
            f"lock and the ledger read; median of {len(idle['ours'])}): this runner {fixed['ours']:.2f} s, dbmate "
            f"{fixed['dbmate']:.2f} s; the applying itself (wall minus that): this runner "
            f"{ours.seconds - fixed['ours']:.2f} s, dbmate {base_loop.seconds - fixed['dbmate']:.2f} s "
            f"({(ours.seconds - fixed['ours']) / (base_loop.seconds - fixed['dbmate']):.2f}x)"
        )
        lines.append(
            f"- the server's own work for these files (each file one prebuilt `BEGIN; <file>; COMMIT` message from "
            f"an in-process client, no ledger, no checks; median): {floor:.2f} s; with this runner's start-up that "
            f"is {floor + fixed['ours']:.2f} s, against dbmate's whole run of {base_loop.seconds:.2f} s"
        )
    if ours and base_loop and ours.tables != base_loop.tables:
        lines.append(f"- the two tools made different numbers of relations: {ours.tables} vs {base_loop.tables}")
    return lines


def render_parse(p: ParseRun) -> list[str]:
    lines = [
        f"## 3. Parsing one file of {p.statements} INSERTs ({p.megabytes:.1f} MB, 'é' in every row)",
        "",
        f"- this runner's parser in-process (`infra.migrations.source.load`, best of 3): {p.parse_seconds:.3f} s "
        f"(goal < 1 s: {verdict(p.parse_seconds < 1.0)})",
        "",
        "| tool | `status`, file not applied (s) | `migrate` of the file, loopback (s) |",
        "|---|---:|---:|",
    ]
    for tool in p.status:
        lines.append(f"| {label(tool)} | {p.status[tool]:.2f} | {p.migrate[tool]:.2f} |")
    lines += ["", "dbmate's `status` lists file names and does not read the SQL; its `migrate` parses the file."]
    return lines


def render(sections: list[list[str]], delay_ms: float, tls: bool, cmd: str) -> str:
    lines = [
        "# Migration benchmark: this runner beside dbmate",
        "",
        f"Command: `{cmd}`",
        "",
        f"PostgreSQL 16 (embedded), {'TLS verify-full' if tls else 'no TLS'}, SCRAM auth; "
        f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}. "
        f"Round trips counted by a TCP proxy (client turns); the delayed runs add {delay_ms:g} ms "
        "at every change of direction. Wall time is the tool's process, start to exit.",
        "",
    ]
    for section in sections:
        lines += [*section, ""]
    connect_cost, connect_how = (6, "SSLRequest, TLS 1.3 handshake, SCRAM") if tls else (3, "SCRAM")
    lines += [
        "Notes:",
        "",
        f"- Every tool pays {connect_cost} round trips per connection ({connect_how}); the connections column "
        "is what the proxy saw.",
        "- Loopback wall times are CPU-bound, include interpreter start-up (`python -m infra` imports the "
        "modules its command needs; dbmate is run as its Go binary, not through npm's node launcher, which "
        "adds about 60 ms) and were taken on a shared 2-core machine: single runs vary by a few tenths of a "
        "second there, hence the median of alternating runs for the real history. With latency, round trips "
        "dominate.",
        "- infra/ was compiled to bytecode before timing (`python -m compileall infra`, what pip does on "
        "install and Python on a first run), so start-up is a user's steady state, not a compile of every "
        "module on each run (this machine sets PYTHONDONTWRITEBYTECODE=1).",
    ]
    return "\n".join(lines) + "\n"


def label(tool: str) -> str:
    versions = {
        "ours": "this runner",
        "yoyo": f"yoyo-migrations {_version('yoyo-migrations')}",
        "alembic": f"Alembic {_version('alembic')} (SQLAlchemy {_version('sqlalchemy')})",
        "dbmate": f"dbmate {DBMATE_VERSION}",
    }
    return versions[tool]


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="generated migrations (0: skip part 1)")
    parser.add_argument("--delay-ms", type=float, default=10.0)
    parser.add_argument("--tls", action="store_true", help="all tools with sslmode=verify-full")
    parser.add_argument("--tools", default=",".join(TOOLS), help="tools for part 1")
    parser.add_argument("--history", default="litellm", choices=[*HISTORIES, ""], help="real history ('': skip)")
    parser.add_argument("--parse-statements", type=int, default=32000, help="0: skip part 3")
    parser.add_argument("--repeat", type=int, default=7, help="loopback runs of the real history per tool (median)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--append", action="store_true", help="append to --output instead of replacing it")
    args = parser.parse_args()
    tools = [t for t in args.tools.split(",") if t]
    WORK.mkdir(parents=True, exist_ok=True)
    dbmate = ensure_dbmate()
    compile_bytecode()
    cluster = start_cluster(args.tls)
    sections: list[list[str]] = []

    def progress(part: str, run: Run) -> None:
        print(
            f"{part} {run.tool:8s} delay {run.delay_ms:4.0f} ms: {run.seconds:7.2f} s, {run.round_trips} round trips, "
            f"{run.connections} connection(s)",
            file=sys.stderr,
            flush=True,
        )

    try:
        if args.n:
            dirs = generate(args.n, WORK / "migrations")
            runs: list[Run] = []
            for delay in (0.0, args.delay_ms):
                for tool in tools:
                    runs.append(run_tool(tool, cluster, dirs, delay, args.n, args.tls, dbmate))
                    progress("generated", runs[-1])
            sections.append(render_generated(runs, args.n, args.delay_ms))
        if args.history:
            files = load_history(args.history)
            directory = WORK / "history"
            shutil.rmtree(directory, ignore_errors=True)
            layout(files, directory, down="")
            hist: list[Run] = []
            loop: dict[str, list[Run]] = {"ours": [], "dbmate": []}
            for rep in range(args.repeat):  # alternating, so a busy moment of the machine hits both
                for tool in loop:
                    loop[tool].append(run_history(tool, cluster, directory, 0.0, args.tls, dbmate, rep))
                    progress(args.history, loop[tool][-1])
            hist += [median_run(runs) for runs in loop.values()]
            floor = statistics.median(server_floor(cluster, directory, rep) for rep in range(args.repeat))
            idle: dict[str, list[float]] = {"ours": [], "dbmate": []}
            for rep in range(args.repeat):  # nothing left to apply: start-up, files, connect, lock, ledger
                for tool in idle:
                    db = f"hist_{tool}_0_{rep}"
                    idle[tool].append(timed(tool, cluster, {"sql": directory}, 0.0, args.tls, dbmate, db)[0])
            for tool in loop:
                hist.append(run_history(tool, cluster, directory, args.delay_ms, args.tls, dbmate))
                progress(args.history, hist[-1])
            nontx = sum(not f.transactional for f in files)
            sections.append(render_history(hist, args.history, len(files), nontx, args.delay_ms, idle, floor))
        if args.parse_statements:
            parsed = run_parse(cluster, args.parse_statements, args.tls, dbmate, ["ours", "dbmate"])
            print(f"parse: {parsed.parse_seconds:.3f} s in-process; {parsed}", file=sys.stderr, flush=True)
            sections.append(render_parse(parsed))
    finally:
        cluster.destroy()
    cmd = "python bench/migrate_bench.py " + " ".join(sys.argv[1:])
    table = render(sections, args.delay_ms, args.tls, cmd.strip())
    print(table)
    if args.append and args.output.exists():
        table = args.output.read_text() + "\n" + table
    args.output.write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
