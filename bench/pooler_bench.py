"""Benchmark: pgbench with 200 clients against PostgreSQL 16 with max_connections=50, direct and through PgBouncer.

    venv/bin/python bench/pooler_bench.py [--clients 200] [--seconds 10] [--pool-size 20]

One embedded PostgreSQL 16 (the npm build; ``max_connections=50``) and one PgBouncer in
transaction mode (Debian's package, ``default_pool_size`` server connections) in front of it.
pgbench 16.2 (from the pgserver wheel) runs the built-in select-only script with the same 200
clients, twice per path: with persistent connections (200 application processes that each keep
one), and with ``-C``, a new connection per transaction (serverless functions). For each run:
throughput (transactions per second), p99 latency from pgbench's per-transaction log, and the
connection errors pgbench reports. The table goes to stdout and replaces the pooler section of
bench/RESULTS.md. Not part of ``make test``.

pgbench here has no SSL (the wheel's libpq), so both paths run without TLS over loopback TCP with
SCRAM-SHA-256 logins (this throwaway cluster's pg_hba admits the bench user without TLS; the
pooler's server side is the private Unix socket). The password reaches pgbench through a 0600
pgpass file, never argv or the environment.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.local.pg import LocalPostgres  # noqa: E402
from infra.local.pooler import LocalPooler  # noqa: E402
from infra.local.replica import client_bin  # noqa: E402

WORK = ROOT / "bench" / ".work-pooler"
USER = "bench"
DB = "benchdb"
PASSWORD = "bench-password-not-secret"  # a throwaway local cluster
MAX_CONNECTIONS = 50
SECTION = "# Pooler benchmark"
# pgbench's messages for a connection it could not open (initial or, with -C, per transaction)
_CONNECT_ERROR = re.compile(r"connection to server .* failed|could not create connection|too many clients", re.I)


@dataclasses.dataclass(frozen=True)
class Run:
    path: str  # "direct" | "pgbouncer"
    mode: str  # "persistent" | "connect per transaction (-C)"
    tps: float
    p99_ms: float | None
    transactions: int
    connection_errors: int
    clients_aborted: int
    exit_code: int


def _pgpass(host: str, port: int) -> Path:
    path = WORK / "pgpass"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{host}:{port}:*:{USER}:{PASSWORD}\n")
    return path


def _pgbench(args: list[str], host: str, port: int, log_dir: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSFILE"] = str(_pgpass(host, port))
    argv = [str(client_bin("pgbench")), "-h", host, "-p", str(port), "-U", USER, *args, DB]
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=log_dir, timeout=timeout, check=False)


def _p99(log_dir: Path) -> tuple[float | None, int]:
    latencies: list[int] = []
    for log in log_dir.glob("pgbench_log.*"):
        for line in log.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[2].isdigit():
                latencies.append(int(parts[2]))  # microseconds
    if not latencies:
        return None, 0
    latencies.sort()
    return latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] / 1000.0, len(latencies)


def run(path: str, mode: str, host: str, port: int, clients: int, seconds: int) -> Run:
    log_dir = WORK / f"log-{path}-{'C' if '-C' in mode else 'P'}"
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir(parents=True)
    args = ["--builtin=select-only", "-c", str(clients), "-j", "2", "-T", str(seconds), "-l", "-n"]
    if "-C" in mode:
        args.append("-C")
    result = _pgbench(args, host, port, log_dir, timeout=seconds * 4 + 60)
    out = result.stdout + result.stderr
    tps = re.search(r"^tps = ([\d.]+)", result.stdout, re.M)
    aborted = re.search(r"number of clients aborted: (\d+)", out)
    p99, transactions = _p99(log_dir)
    return Run(
        path=path,
        mode=mode,
        tps=float(tps.group(1)) if tps else 0.0,
        p99_ms=p99,
        transactions=transactions,
        connection_errors=len(_CONNECT_ERROR.findall(result.stderr)),
        clients_aborted=int(aborted.group(1)) if aborted else (clients if result.returncode else 0),
        exit_code=result.returncode,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--pool-size", type=int, default=20, help="PgBouncer server connections (< max_connections)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args(argv)

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    pg = LocalPostgres(WORK / "pg", settings={"max_connections": str(MAX_CONNECTIONS)})
    pooler = LocalPooler(WORK / "pooler", pg, DB, pool_size=args.pool_size, max_client_conn=1000, tls=False)
    try:
        pg.start()
        with psycopg.connect(pg.superuser_conninfo(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(USER), sql.Literal(PASSWORD))
            )
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DB), sql.Identifier(USER)))
            # the bench user over loopback TCP without TLS (pgbench has none), SCRAM as through the pooler
            hba = pg.data / "pg_hba.conf"
            hba.write_text(f"hostnossl all {USER} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
            conn.execute("SELECT pg_reload_conf()")
        init = _pgbench(["-i", "-s", "1", "-q"], "127.0.0.1", pg.port, WORK, timeout=120)
        if init.returncode != 0:
            raise SystemExit(f"pgbench -i failed: {init.stderr.strip()}")
        pooler.start()
        runs: list[Run] = []
        for mode in ("persistent", "connect per transaction (-C)"):
            runs.append(run("direct", mode, "127.0.0.1", pg.port, args.clients, args.seconds))
            runs.append(run("pgbouncer", mode, "127.0.0.1", pooler.port, args.clients, args.seconds))
    finally:
        pooler.stop()
        pg.stop()
    report = render(runs, args)
    print(report)
    if not args.no_write:
        write_section(ROOT / "bench" / "RESULTS.md", report)
    shutil.rmtree(WORK, ignore_errors=True)
    return 0


def render(runs: list[Run], args: argparse.Namespace) -> str:
    lines = [
        f"{SECTION}: {args.clients} clients, max_connections={MAX_CONNECTIONS}, direct vs PgBouncer",
        "",
        f"Command: `python bench/pooler_bench.py --clients {args.clients} --seconds {args.seconds} "
        f"--pool-size {args.pool_size}`",
        "",
        f"PostgreSQL 16 (embedded npm build) with max_connections={MAX_CONNECTIONS}; PgBouncer "
        f"{_pgbouncer_version()} in transaction mode, default_pool_size={args.pool_size}; pgbench 16.2 select-only, "
        f"{args.clients} clients, 2 threads, {args.seconds} s per run; both paths loopback TCP with SCRAM-SHA-256 "
        f"logins and no TLS (pgbench's libpq has none). {os.cpu_count()} CPUs, {platform.machine()}, shared machine.",
        "",
        "| path | connections | tps | p99 latency (ms) | transactions | connection errors | clients aborted "
        "| pgbench exit |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        p99 = "n/a" if r.p99_ms is None else f"{r.p99_ms:.2f}"
        lines.append(
            f"| {r.path} | {r.mode} | {r.tps:.0f} | {p99} | {r.transactions} | {r.connection_errors} | "
            f"{r.clients_aborted} | {r.exit_code} |"
        )
    lines += [
        "",
        "Notes:",
        "",
        f"- Direct, the server admits {MAX_CONNECTIONS} connections less the 3 reserved for superusers: the other "
        "clients are refused (`sorry, too many clients already`). With persistent connections pgbench stops at "
        "the first refused connection of each of its 2 threads (2 errors), so that run never starts: "
        "no throughput at all.",
        f"- Through PgBouncer all {args.clients} clients connect; they share {args.pool_size} server connections, "
        "one per transaction, and wait in PgBouncer's queue when all are busy: the p99 includes that wait.",
        "- `-C` opens a connection per transaction, and every login is a SCRAM exchange (4096 PBKDF2 "
        "iterations on each side). Direct, the server forks a backend per login, and the clients beyond its limit "
        "are refused and abort. Through PgBouncer no client is refused, but PgBouncer is one process: it checks "
        "every SCRAM login itself (and looks the verifier up with auth_query), so logins queue behind one core. "
        "Pooling pays off for long-lived application connections; connection-per-request clients want a pooler "
        "next to them (or a lighter login) as well.",
        f"- Measured {time.strftime('%Y-%m-%d')}; on a shared 2-core machine throughput and latency move between "
        "runs (the -C rows most); the refused connections do not.",
        "",
    ]
    return "\n".join(lines)


def _pgbouncer_version() -> str:
    from infra.local.pooler import find_pgbouncer

    out = subprocess.run([str(find_pgbouncer()), "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"PgBouncer ([\d.]+)", out)
    return match.group(1) if match else "?"


def write_section(path: Path, section: str) -> None:
    """Replace the pooler section of RESULTS.md (or append it), leaving the other benchmarks' sections."""
    text = path.read_text() if path.exists() else ""
    start = text.find(SECTION)
    if start >= 0:
        end = text.find("\n# ", start + 1)
        text = text[:start] + (text[end + 1 :] if end >= 0 else "")
    path.write_text(text.rstrip("\n") + "\n\n" + section)


if __name__ == "__main__":
    raise SystemExit(main())
