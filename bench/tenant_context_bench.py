"""Cost of the signed tenant context (0008) against the policies it replaced (0006), with pgbench.

Two databases in one embedded PostgreSQL 16 cluster: ``before`` migrated to 0007 (policies compare
``tenant_id`` with ``current_setting('app.tenant_id')``), ``after`` migrated to head (policies
compare with ``(SELECT app.current_tenant())``, which checks an HMAC-signed token once per query).
Both hold the same rows: 10 tenants x 1,000 users. Each pgbench transaction, as a member of
``app_readwrite`` (RLS applies), sets the tenant and reads that tenant's 1,000 users:

    BEGIN; <set the tenant>; SELECT id, email, display_name, created_at FROM app.users; COMMIT;

pgbench 16.2 comes from the ``pgserver`` wheel (built without SSL, so it connects over the
cluster's Unix socket); the server is the embedded npm PostgreSQL 16.14 the project uses. Runs
alternate before/after in short pairs, so a busy neighbour on a shared machine weighs on both
halves of a pair alike; the goal figure is the median over pairs of after/before of the read
statement's latency (``pgbench -r``). Goal: the read costs at most 5 % more.

    python bench/tenant_context_bench.py [--seconds 3] [--rounds 15] [--append]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.local.pg import LocalPostgres  # noqa: E402
from infra.migrations import commands  # noqa: E402
from infra.migrations.connection import ConnectionSpec  # noqa: E402

TENANTS = 10
USERS_PER_TENANT = 1000
READ = "SELECT id, email, display_name, created_at FROM app.users;"
RESULTS = ROOT / "bench" / "RESULTS.md"


def pgbench() -> Path:
    # the wheel's PostgreSQL 16 client tools (pgbench 16.2); found, not imported (importing starts nothing
    # we need and warns about XDG_RUNTIME_DIR)
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the pgserver wheel is not installed; pip install -r requirements-dev.txt")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / "pgbench"
    if not path.exists():
        raise SystemExit(f"pgbench not found at {path}; install the pinned pgserver wheel (requirements-dev.txt)")
    return path


@dataclass(frozen=True)
class Case:
    name: str
    dbname: str
    set_tenant: str  # the pgbench line that sets the tenant (":tenant" / ":token" substituted by pgbench)


def migrate(cluster: LocalPostgres, dbname: str, migrations: Path) -> None:
    spec = ConnectionSpec(host=str(cluster.socket_dir), port=cluster.port, dbname=dbname, user="postgres")
    commands.migrate(commands.MigrationContext(spec, migrations))


def populate(conn: psycopg.Connection[tuple[object, ...]], signed: bool) -> list[str]:
    tenants = [f"{i:08d}-0000-4000-8000-000000000000" for i in range(1, TENANTS + 1)]
    with conn.transaction():
        conn.execute("ALTER TABLE app.tenants DISABLE ROW LEVEL SECURITY")  # superuser set-up only
        conn.execute("ALTER TABLE app.users DISABLE ROW LEVEL SECURITY")
        for n, tenant in enumerate(tenants):
            conn.execute("INSERT INTO app.tenants (id, slug, name) VALUES (%s, %s, %s)", (tenant, f"t{n}", f"T{n}"))
            conn.execute(
                "INSERT INTO app.users (tenant_id, email, display_name)"
                " SELECT %s, 'user' || g || '@t' || %s || '.example', 'User ' || g"
                " FROM generate_series(1, %s) g",
                (tenant, n, USERS_PER_TENANT),
            )
        conn.execute("ALTER TABLE app.tenants ENABLE ROW LEVEL SECURITY")
        conn.execute("ALTER TABLE app.users ENABLE ROW LEVEL SECURITY")
    conn.execute("ANALYZE app.users")
    if not signed:
        return tenants
    return [str(conn.execute("SELECT app.mint_tenant_token(%s, '1 day')", (t,)).fetchone()[0]) for t in tenants]  # type: ignore[index]


def run(cluster: LocalPostgres, case: Case, value: str, seconds: int, work: Path) -> tuple[float, float, int]:
    """One pgbench run: (read statement latency ms, set-tenant latency ms, transactions)."""
    script = work / f"{case.name}.sql"
    script.write_text(f"BEGIN;\n{case.set_tenant}\n{READ}\nCOMMIT;\n")
    var = "token" if "token" in case.set_tenant else "tenant"
    argv = [
        str(pgbench()),
        "-n",
        "-r",
        "-c",
        "1",
        "-j",
        "1",
        "-T",
        str(seconds),
        "-h",
        str(cluster.socket_dir),
        "-p",
        str(cluster.port),
        "-U",
        "bench_app",
        "-D",
        f"{var}='{value}'",
        "-f",
        str(script),
        case.dbname,
    ]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, env={"PATH": os.environ["PATH"]}).stdout
    latencies = {
        line.split(None, 2)[2].strip(): float(line.split()[0])
        for line in out.splitlines()
        if re.match(r"^\s+\d+\.\d+\s+\d+\s+\S", line)
    }
    transactions = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))  # type: ignore[union-attr]
    return latencies[READ], latencies[case.set_tenant], transactions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=3, help="length of each pgbench run")
    parser.add_argument("--rounds", type=int, default=15, help="before/after pairs")
    parser.add_argument("--append", action="store_true", help="append the results to bench/RESULTS.md")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tenant-bench-"))
    cluster = LocalPostgres(work / "pg", settings={"fsync": "off"})
    try:
        cluster.start()
        before_dir = work / "migrations-0007"
        before_dir.mkdir()
        for path in sorted((ROOT / "schema" / "migrations").glob("000[1-7]_*.sql")):
            shutil.copy(path, before_dir / path.name)
        with psycopg.connect(cluster.superuser_conninfo(), autocommit=True) as conn:
            for name in ("before", "after"):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            conn.execute("CREATE ROLE bench_app LOGIN")
        migrate(cluster, "before", before_dir)
        migrate(cluster, "after", ROOT / "schema" / "migrations")
        with psycopg.connect(cluster.superuser_conninfo(), autocommit=True) as conn:
            conn.execute("GRANT app_readwrite TO bench_app")
        values: dict[str, str] = {}
        for name, signed in (("before", False), ("after", True)):
            with psycopg.connect(cluster.superuser_conninfo(name), autocommit=True) as conn:
                values[name] = populate(conn, signed)[3]
        cases = (
            Case("before", "before", "SELECT set_config('app.tenant_id', :tenant, true);"),
            Case("after", "after", "SELECT app.set_tenant(:token);"),
        )
        results: dict[str, list[tuple[float, float, int]]] = {c.name: [] for c in cases}
        for _ in range(args.rounds):
            for case in cases:
                results[case.name].append(run(cluster, case, values[case.name], args.seconds, work))
    finally:
        cluster.destroy()
        shutil.rmtree(work, ignore_errors=True)
    report = render(results, args)
    print(report)
    if args.append:
        with RESULTS.open("a") as handle:
            handle.write("\n" + report)
    return 0


def render(results: dict[str, list[tuple[float, float, int]]], args: argparse.Namespace) -> str:
    def med(name: str, index: int) -> float:
        return statistics.median(r[index] for r in results[name])

    read_before, read_after = med("before", 0), med("after", 0)
    set_before, set_after = med("before", 1), med("after", 1)
    tps_before = statistics.median(r[2] for r in results["before"]) / args.seconds
    tps_after = statistics.median(r[2] for r in results["after"]) / args.seconds
    pairs = [a[0] / b[0] for b, a in zip(results["before"], results["after"], strict=True)]
    read_change = (statistics.median(pairs) - 1) * 100
    spread = f"{(min(pairs) - 1) * 100:+.1f} % .. {(max(pairs) - 1) * 100:+.1f} %"
    lines = [
        "# Tenant context: signed token (0008) vs a bare setting (0006), 1,000-row reads",
        "",
        f"Command: `python bench/tenant_context_bench.py --seconds {args.seconds} --rounds {args.rounds}`",
        "",
        f"PostgreSQL 16.14 (embedded), pgbench 16.2 (pgserver wheel) over the Unix socket, 1 client; "
        f"{TENANTS} tenants x {USERS_PER_TENANT} users, each transaction reads one tenant's {USERS_PER_TENANT} "
        f"rows as a member of app_readwrite. {os.cpu_count()} CPUs, {platform.machine()}, shared with other work "
        f"(load average {os.getloadavg()[0]:.1f} at the end). {args.rounds} before/after pairs of {args.seconds} s "
        "runs; latencies and rates are medians over the runs.",
        "",
        "| policies | set the tenant (ms) | 1,000-row read (ms) | transactions/s |",
        "|---|---:|---:|---:|",
        f"| before: `current_setting('app.tenant_id')` | {set_before:.3f} | {read_before:.3f} | {tps_before:.0f} |",
        f"| after: `(SELECT app.current_tenant())`, signed | {set_after:.3f} | {read_after:.3f} | {tps_after:.0f} |",
        "",
        f"- read cost change, median over pairs of after/before: {read_change:+.1f} % "
        f"(goal <= +5 %: {'met' if read_change <= 5 else 'MISSED'}); pairs ranged {spread}",
        f"- setting the tenant: {set_after - set_before:+.3f} ms per transaction (one HMAC check instead of none)",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
