"""Cost of the signed tenant context (0008) against the policy it replaced (0006), with pgbench.

One database at head holds 10 tenants x 1,000 users twice: ``app.users``, under today's policy
(``tenant_id = (SELECT app.current_tenant())``, which checks an HMAC-signed token once per query),
and ``app.users_0006``, a twin with the same rows and indexes under the policies 0006 had
(``tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid``, any session may set it).
One pgbench run mixes two scripts, picked at random per transaction, so whatever else the machine
is doing weighs on both alike; each transaction, as a member of ``app_readwrite`` (RLS applies),
sets the tenant and reads that tenant's 1,000 rows:

    before: BEGIN; SELECT set_config('app.tenant_id', :tenant, true); SELECT ... FROM app.users_0006; COMMIT;
    after:  BEGIN; SELECT app.set_tenant(:token);                     SELECT ... FROM app.users;      COMMIT;

pgbench 16.2 comes from the ``pgserver`` wheel (built without SSL, so it connects over the
cluster's Unix socket); the server is the embedded npm PostgreSQL 16.14 the project uses. The
figures are pgbench's per-statement latencies (``-r``), medians over the runs. Goal: the read
costs at most 5 % more.

    python bench/tenant_context_bench.py [--seconds 10] [--rounds 5] [--append]
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
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.local.pg import LocalPostgres  # noqa: E402
from infra.migrations import commands  # noqa: E402
from infra.migrations.connection import ConnectionSpec  # noqa: E402

TENANTS = 10
USERS_PER_TENANT = 1000
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


COLUMNS = "id, email, display_name, created_at"
BEFORE = f"BEGIN;\nSELECT set_config('app.tenant_id', :tenant, true);\nSELECT {COLUMNS} FROM app.users_0006;\nCOMMIT;\n"
AFTER = f"BEGIN;\nSELECT app.set_tenant(:token);\nSELECT {COLUMNS} FROM app.users;\nCOMMIT;\n"


def migrate(cluster: LocalPostgres, dbname: str, migrations: Path) -> None:
    spec = ConnectionSpec(host=str(cluster.socket_dir), port=cluster.port, dbname=dbname, user="postgres")
    commands.migrate(commands.MigrationContext(spec, migrations))


def populate(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[str, str]:
    """Both tables filled alike; a tenant id and a token for it (as the superuser: set-up only)."""
    tenants = [f"{i:08d}-0000-4000-8000-000000000000" for i in range(1, TENANTS + 1)]
    with conn.transaction():
        conn.execute("ALTER TABLE app.tenants DISABLE ROW LEVEL SECURITY")
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
        # the twin: same columns, constraints, indexes and rows; 0006's policy
        conn.execute("CREATE TABLE app.users_0006 (LIKE app.users INCLUDING ALL)")
        conn.execute("INSERT INTO app.users_0006 SELECT * FROM app.users")
        conn.execute("ALTER TABLE app.users_0006 OWNER TO app_owner")
        conn.execute("ALTER TABLE app.users_0006 ENABLE ROW LEVEL SECURITY")
        conn.execute("ALTER TABLE app.users_0006 FORCE ROW LEVEL SECURITY")
        conn.execute(
            "CREATE POLICY tenant_isolation ON app.users_0006"
            " USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)"
        )
        conn.execute("CREATE POLICY platform_admin_all ON app.users_0006 TO platform_admin USING (true)")
        conn.execute("GRANT SELECT ON app.users_0006 TO app_readwrite")
    conn.execute("ANALYZE app.users, app.users_0006")
    row = conn.execute("SELECT app.mint_tenant_token(%s, '1 day')", (tenants[3],)).fetchone()
    assert row is not None
    return tenants[3], str(row[0])


def _latencies(out: str) -> dict[str, float]:
    """Per-statement latencies (ms) of a two-script ``pgbench -r`` report, keyed by statement."""
    found: dict[str, float] = {}
    for line in out.splitlines():
        match = re.match(r"^\s+(\d+\.\d+)\s+\d+\s+(\S.*)$", line)
        if match:
            found[match.group(2).strip()] = float(match.group(1))
    return found


def run(cluster: LocalPostgres, tenant: str, token: str, seconds: int, work: Path) -> dict[str, float]:
    """One pgbench run of both scripts mixed: the latencies of their statements (ms) and the rates."""
    (work / "before.sql").write_text(BEFORE)
    (work / "after.sql").write_text(AFTER)
    argv = [
        str(pgbench()), "-n", "-r", "-c", "1", "-j", "1", "-T", str(seconds),
        "-h", str(cluster.socket_dir), "-p", str(cluster.port), "-U", "bench_app",
        "-D", f"tenant='{tenant}'", "-D", f"token='{token}'",
        "-f", f"{work / 'before.sql'}@1", "-f", f"{work / 'after.sql'}@1", "bench",
    ]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, check=True, env={"PATH": os.environ["PATH"]}).stdout
    lat = _latencies(out)
    return {
        "read_before": lat[f"SELECT {COLUMNS} FROM app.users_0006;"],
        "read_after": lat[f"SELECT {COLUMNS} FROM app.users;"],
        "set_before": lat["SELECT set_config('app.tenant_id', :tenant, true);"],
        "set_after": lat["SELECT app.set_tenant(:token);"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="length of each pgbench run")
    parser.add_argument("--rounds", type=int, default=5, help="pgbench runs")
    parser.add_argument("--append", action="store_true", help="append the results to bench/RESULTS.md")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tenant-bench-"))
    cluster = LocalPostgres(work / "pg")
    try:
        cluster.start()
        with psycopg.connect(cluster.superuser_conninfo(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
            conn.execute("CREATE ROLE bench_app LOGIN")
        migrate(cluster, "bench", ROOT / "schema" / "migrations")
        with psycopg.connect(cluster.superuser_conninfo(), autocommit=True) as conn:
            conn.execute("GRANT app_readwrite TO bench_app")
        with psycopg.connect(cluster.superuser_conninfo("bench"), autocommit=True) as conn:
            tenant, token = populate(conn)
        runs = [run(cluster, tenant, token, args.seconds, work) for _ in range(args.rounds)]
    finally:
        cluster.destroy()
        shutil.rmtree(work, ignore_errors=True)
    report = render(runs, args)
    print(report)
    if args.append:
        with RESULTS.open("a") as handle:
            handle.write("\n" + report)
    return 0


def render(runs: list[dict[str, float]], args: argparse.Namespace) -> str:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    ratios = [r["read_after"] / r["read_before"] for r in runs]
    change = (statistics.median(ratios) - 1) * 100
    spread = f"{(min(ratios) - 1) * 100:+.1f} % .. {(max(ratios) - 1) * 100:+.1f} %"
    lines = [
        "# Tenant context: signed token (0008) vs the bare setting of 0006, 1,000-row reads",
        "",
        f"Command: `python bench/tenant_context_bench.py --seconds {args.seconds} --rounds {args.rounds}`",
        "",
        f"PostgreSQL 16.14 (embedded), pgbench 16.2 (pgserver wheel) over the Unix socket, 1 client, both "
        f"scripts mixed in each run; {TENANTS} tenants x {USERS_PER_TENANT} users in `app.users` and in its "
        f"twin `app.users_0006` (0006's policies), each read returns one tenant's {USERS_PER_TENANT} rows as a "
        f"member of app_readwrite. {os.cpu_count()} CPUs, {platform.machine()}, shared with other work (load "
        f"average {os.getloadavg()[0]:.1f} at the end). Medians over {args.rounds} runs of {args.seconds} s.",
        "",
        "| policy | set the tenant (ms) | 1,000-row read (ms) |",
        "|---|---:|---:|",
        f"| 0006: `current_setting('app.tenant_id')` | {med('set_before'):.3f} | {med('read_before'):.3f} |",
        f"| 0008: `(SELECT app.current_tenant())`, signed | {med('set_after'):.3f} | {med('read_after'):.3f} |",
        "",
        f"- read cost change: {change:+.1f} % (goal <= +5 %: {'met' if change <= 5 else 'MISSED'}); "
        f"the runs ranged {spread}",
        f"- setting the tenant: {med('set_after') - med('set_before'):+.3f} ms per transaction (the token's check)",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
