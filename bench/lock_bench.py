"""Lock-contention benchmark: what an application sees while a migration needs ACCESS EXCLUSIVE on its
table behind a long transaction, with this runner and with dbmate, in one run.

    venv/bin/python bench/lock_bench.py [--rate 200] [--seconds 25] [--blocker 12] [--append]

pgbench (PostgreSQL 16.2's, from the pgserver wheel, over the Unix socket) runs its TPC-B-like
script at ``--rate`` transactions per second against one embedded PostgreSQL 16. Three seconds in,
a session opens a transaction that reads ``pgbench_accounts`` and holds it ``--blocker`` seconds
(a report, a slow request); one second later the migration ``ALTER TABLE pgbench_accounts ADD
COLUMN ...`` starts. Its ACCESS EXCLUSIVE request waits behind the reader, and every application
query on the table queues behind that request. Latency per transaction is pgbench's own log
(``--log``: elapsed time plus schedule lag, i.e. from when the transaction was due). Each tool
gets a fresh database; a run without a migration gives the baseline.

The rows: dbmate 2.36.0 (no lock_timeout: it waits as long as the blocker lasts), this runner with
the options it had before this change (``--lock-timeout 5s --lock-retries 3``), and this runner
with its defaults. Prints a Markdown table (and appends it to bench/RESULTS.md with --append).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.local.pg import LocalPostgres  # noqa: E402
from infra.migrations.runner import RunOptions  # noqa: E402

WORK = ROOT / "bench" / ".work" / "locks"
DBMATE_VERSION = "2.36.0"  # as in bench/migrate_bench.py, which installs it in the same place
MIGRATION = "-- migrate:up\nALTER TABLE pgbench_accounts ADD COLUMN note text;\n-- migrate:down\n"
BLOCKER_AT = 3.0  # seconds into the pgbench run
MIGRATION_AFTER = 1.0  # seconds after the blocker starts


@dataclasses.dataclass(frozen=True)
class Result:
    label: str
    latencies_ms: list[float]
    migration_s: float | None  # None: no migration in this run
    attempts: int | None
    outcome: str

    def pct(self, q: float) -> float:
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(q * len(data)))]

    @property
    def over_1s(self) -> int:
        return sum(1 for ms in self.latencies_ms if ms >= 1000)


def ensure_dbmate() -> Path:
    """dbmate from npm, in bench/.work (shared with bench/migrate_bench.py)."""
    prefix = ROOT / "bench" / ".work"
    binary = prefix / "node_modules" / ".bin" / "dbmate"
    if not binary.exists():
        npm = ["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(prefix)]
        subprocess.run([*npm, f"dbmate@{DBMATE_VERSION}"], check=True)
    return binary


def pgbench_binary() -> Path:
    """pgbench 16.2 from the pgserver wheel (requirements-dev.txt): the embedded npm build ships none."""
    import pgserver

    return Path(pgserver.__file__).parent / "pginstall" / "bin" / "pgbench"


def fresh_db(cluster: LocalPostgres, name: str) -> None:
    with psycopg.connect(cluster.superuser_conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    socket = ["-h", str(cluster.socket_dir), "-p", str(cluster.port), "-U", "postgres"]
    subprocess.run([str(pgbench_binary()), "-i", "-q", "-s", "1", *socket, name], check=True, capture_output=True)


def blocker(cluster: LocalPostgres, db: str, hold: float) -> None:
    with psycopg.connect(cluster.superuser_conninfo(db)) as conn:  # a transaction: held until commit
        conn.execute("SELECT abalance FROM pgbench_accounts WHERE aid = 1")
        time.sleep(hold)
        conn.commit()


def migrate_command(
    tool: str, cluster: LocalPostgres, db: str, migrations: Path, dbmate: Path
) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if tool == "dbmate":
        env["DATABASE_URL"] = (
            f"postgres://postgres@/{db}?socket={cluster.socket_dir}&port={cluster.port}&sslmode=disable"
        )
        return [str(dbmate), "--migrations-dir", str(migrations), "--no-dump-schema", "up"], env
    env["PYTHONPATH"] = str(ROOT)
    argv = [
        sys.executable,
        "-m",
        "infra",
        "migrate",
        "--json",
        "--host",
        str(cluster.socket_dir),
        "--port",
        str(cluster.port),
    ]
    argv += ["--dbname", db, "--user", "postgres", "--migrations-dir", str(migrations)]
    if tool == "ours-before":
        argv += ["--lock-timeout", "5s", "--lock-retries", "3"]
    return argv, env


def run(label: str, tool: str | None, cluster: LocalPostgres, args: argparse.Namespace, dbmate: Path) -> Result:
    db = f"locks_{(tool or 'baseline').replace('-', '_')}"
    fresh_db(cluster, db)
    logs = WORK / "logs" / db
    logs.mkdir(parents=True, exist_ok=True)
    for old in logs.iterdir():
        old.unlink()
    bench = subprocess.Popen(
        [
            str(pgbench_binary()),
            "-h", str(cluster.socket_dir), "-p", str(cluster.port), "-U", "postgres",
            "-c", "8", "-j", "2", "-R", str(args.rate), "-T", str(args.seconds),
            "--log", f"--log-prefix={logs / 'tx'}", db,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    time.sleep(BLOCKER_AT)
    hold = threading.Thread(target=blocker, args=(cluster, db, args.blocker))
    hold.start()
    time.sleep(MIGRATION_AFTER)
    migration_s: float | None = None
    attempts: int | None = None
    outcome = "no migration"
    if tool is not None:
        migrations = WORK / "migrations" / db
        migrations.mkdir(parents=True, exist_ok=True)
        (migrations / "0001_add_note.sql").write_text(MIGRATION)
        argv, env = migrate_command(tool, cluster, db, migrations, dbmate)
        started = time.monotonic()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        migration_s = time.monotonic() - started
        outcome = "applied" if done.returncode == 0 else f"failed: {(done.stderr or done.stdout).strip()[-200:]}"
        if tool != "dbmate" and done.returncode == 0:
            attempts = int(json.loads(done.stdout)["applied"][0]["attempts"])
        elif tool == "dbmate":
            attempts = 1
    hold.join()
    bench.communicate()
    latencies: list[float] = []
    for log in logs.iterdir():
        for line in log.read_text().splitlines():
            fields = line.split()
            # client tx time script epoch usec [lag]: elapsed plus schedule lag = since it was due
            lag = int(fields[6]) if len(fields) > 6 else 0
            latencies.append((int(fields[2]) + lag) / 1000)
    return Result(label, latencies, migration_s, attempts, outcome)


def render(results: list[Result], args: argparse.Namespace, cmd: str) -> str:
    base = results[0]
    defaults = RunOptions()
    lines = [
        f"# Lock contention: pgbench at {args.rate} tx/s, a {args.blocker:g} s reader, a migration needing "
        "ACCESS EXCLUSIVE 1 s later",
        "",
        f"Command: `{cmd}`",
        "",
        f"PostgreSQL 16 (embedded), pgbench 16.2 (TPC-B-like, 8 clients) over the Unix socket, {args.seconds} s "
        f"per run; the reader starts {BLOCKER_AT:g} s in; {os.cpu_count()} CPUs, {platform.machine()}, Python "
        f"{platform.python_version()}. Latency is pgbench's per-transaction log, from when each transaction was "
        "due (elapsed + schedule lag). This runner's defaults now: "
        f"lock_timeout {defaults.lock_timeout}, {defaults.lock_retries} retries, jittered backoff from "
        f"{defaults.retry_base_delay:g} s doubling up to {defaults.retry_max_delay:g} s.",
        "",
        "| run | migration | attempts | migration wall (s) | app p50 (ms) | app p99 (ms) | p99 added (ms) "
        "| app max (ms) | transactions >= 1 s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        wall = "" if r.migration_s is None else f"{r.migration_s:.1f}"
        tries = "" if r.attempts is None else str(r.attempts)
        added = r.pct(0.99) - base.pct(0.99)
        lines.append(
            f"| {r.label} | {r.outcome} | {tries} | {wall} | {statistics.median(r.latencies_ms):.1f} | "
            f"{r.pct(0.99):.0f} | {added:.0f} | {max(r.latencies_ms):.0f} | {r.over_1s} |"
        )
    ours = results[-1]
    added = ours.pct(0.99) - base.pct(0.99)
    met = added <= 1000 and ours.outcome == "applied"
    lines += [
        "",
        f"- goal with default settings: p99 added <= 1000 ms while the migration completes: {added:.0f} ms, "
        f"{ours.outcome} after {ours.attempts} attempt(s) ({'met' if met else 'MISSED'})",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=25)
    parser.add_argument("--blocker", type=float, default=12.0)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--append", action="store_true", help="append the table to --output")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    dbmate = ensure_dbmate()
    cluster = LocalPostgres(WORK / "pg", server_names=("localhost",))
    cluster.start()
    results: list[Result] = []
    try:
        for label, tool in (
            ("baseline (reader, no migration)", None),
            (f"dbmate {DBMATE_VERSION}", "dbmate"),
            ("this runner, before (5s, 3 retries)", "ours-before"),
            ("this runner, defaults", "ours"),
        ):
            result = run(label, tool, cluster, args, dbmate)
            print(f"{label}: {result.outcome}, p99 {result.pct(0.99):.0f} ms", file=sys.stderr, flush=True)
            results.append(result)
    finally:
        cluster.destroy()
    cmd = ("python bench/lock_bench.py " + " ".join(sys.argv[1:])).strip()
    table = render(results, args, cmd)
    print(table)
    if args.append:
        args.output.write_text(args.output.read_text() + "\n" + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
