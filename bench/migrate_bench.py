"""Benchmark: apply N generated migrations with this runner, yoyo-migrations, Alembic and dbmate.

    venv/bin/python bench/migrate_bench.py [--n 200] [--delay-ms 20] [--tls] [--tools ours,yoyo,alembic,dbmate]

Each migration creates a table and an index. Every tool runs as its own process (as a user runs
it) against a fresh database of one embedded PostgreSQL 16, through tests/fixtures/proxy.py,
which counts round trips (each time the client speaks after the server did) and, in the second
pass, adds ``--delay-ms`` at every change of direction (a distant tunnel: a round trip costs two
delays). Wall time is the process's, start to exit, so it includes interpreter start-up.

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
from tests.fixtures.proxy import TcpProxy  # noqa: E402

DBMATE_VERSION = "2.36.0"
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


def ensure_dbmate() -> Path:
    binary = WORK / "node_modules" / ".bin" / "dbmate"
    if not binary.exists():
        subprocess.run(
            [
                "npm",
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(WORK),
                f"dbmate@{DBMATE_VERSION}",
            ],
            check=True,
        )
    return binary


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


def command(
    tool: str, port: int, db: str, dirs: dict[str, Path], tls: bool, cluster: LocalPostgres, dbmate: Path | None
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
            "migrate",
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
        return [str(dbmate), "--migrations-dir", str(dirs["sql"]), "--no-dump-schema", "migrate"], env
    raise ValueError(tool)


def run_tool(
    tool: str, cluster: LocalPostgres, dirs: dict[str, Path], delay_ms: float, n: int, tls: bool, dbmate: Path | None
) -> Run:
    db = f"bench_{tool}_{int(delay_ms)}"
    fresh_db(cluster, db)
    with TcpProxy("127.0.0.1", cluster.port, delay=delay_ms / 1000) as proxy:
        argv, env = command(tool, proxy.port, db, dirs, tls, cluster, dbmate)
        started = time.perf_counter()
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        proxy.wait_closed()
        stats = proxy.stats()
    if result.returncode != 0:
        raise SystemExit(f"{tool} failed (exit {result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    tables = count_tables(cluster, db)
    if tables != n:
        raise SystemExit(f"{tool}: expected {n} tables with their index, found {tables}")
    return Run(tool, delay_ms, seconds, stats.round_trips, stats.connections, tables)


def render(runs: list[Run], n: int, delay_ms: float, tls: bool, cmd: str) -> str:
    loop = {r.tool: r for r in runs if r.delay_ms == 0}
    slow = {r.tool: r for r in runs if r.delay_ms == delay_ms}
    lines = [
        f"# Migration benchmark: {n} migrations (a table and an index each)",
        "",
        f"Command: `{cmd}`",
        "",
        f"PostgreSQL 16 (embedded), {'TLS verify-full' if tls else 'no TLS'}, SCRAM auth; "
        f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}. "
        f"Round trips counted by a TCP proxy (client turns); the delayed run adds {delay_ms:g} ms "
        "at every change of direction. Wall time is the tool's process, start to exit.",
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
        ok = ours.round_trips <= n + 5
        lines.append(f"- target round trips <= N + 5 = {n + 5}: {ours.round_trips} ({'met' if ok else 'MISSED'})")
    if ours_slow and base:
        slow_ratio = ours_slow.seconds / base.seconds
        lines.append(
            f"- target delayed wall <= 0.5x dbmate: {slow_ratio:.2f}x ({'met' if slow_ratio <= 0.5 else 'MISSED'})"
        )
    connect_cost, connect_how = (6, "SSLRequest, TLS 1.3 handshake, SCRAM") if tls else (3, "SCRAM")
    lines += [
        "",
        "Notes:",
        "",
        f"- This runner: {connect_cost} round trips to connect ({connect_how}), 1 to take the advisory lock, "
        "create and read the ledger, 1 per migration (`BEGIN; RESET ALL; RESET ROLE; SET LOCAL <timeouts>; "
        "<file>; SET LOCAL ROLE NONE; INSERT <ledger row>; COMMIT;` as one simple-query message), 1 for the "
        "closing Terminate.",
        "- The connections column is what the proxy saw: every connection pays the connect round trips again.",
        "- Loopback wall times are CPU-bound, include interpreter start-up (about 0.6 s for `python -m infra`, "
        "which imports every CLI module; a few ms for dbmate's Go binary) and were taken on a shared 2-core "
        "machine: differences of a second or two between tools there are noise. With latency, round trips "
        "dominate.",
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
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--tls", action="store_true", help="all tools with sslmode=verify-full")
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--append", action="store_true", help="append to --output instead of replacing it")
    args = parser.parse_args()
    tools = [t for t in args.tools.split(",") if t]
    WORK.mkdir(parents=True, exist_ok=True)
    dirs = generate(args.n, WORK / "migrations")
    dbmate = ensure_dbmate() if "dbmate" in tools else None
    cluster = start_cluster(args.tls)
    runs: list[Run] = []
    try:
        for delay in (0.0, args.delay_ms):
            for tool in tools:
                run = run_tool(tool, cluster, dirs, delay, args.n, args.tls, dbmate)
                print(
                    f"{tool:8s} delay {delay:4.0f} ms: {run.seconds:7.2f} s, {run.round_trips} round trips, "
                    f"{run.connections} connection(s)",
                    file=sys.stderr,
                    flush=True,
                )
                runs.append(run)
    finally:
        cluster.destroy()
    cmd = "python bench/migrate_bench.py " + " ".join(sys.argv[1:])
    table = render(runs, args.n, args.delay_ms, args.tls, cmd.strip())
    print(table)
    if args.append and args.output.exists():
        table = args.output.read_text() + "\n" + table
    args.output.write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
