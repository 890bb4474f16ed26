"""Post-deploy checks of the scale-out endpoints: each read replica, and the connection pooler.

After the migrations and the primary's checks (:mod:`~infra.postdeploy.run`), through the same
bastion, one tunnel per endpoint, TLS ``verify-full`` against each endpoint's own name:

- **replicas**: wait until the replica has replayed the run (its newest ledger row equals the
  primary's, read as ``migrator``), reporting how far behind it was (WAL bytes) and how long it
  took; then the read checks as ``readonly`` (:func:`verify_readonly`);
- **pooler**: the ``app`` checks of :func:`~infra.postdeploy.verify.verify_app` through it, and
  :func:`pooled_isolation`: under transaction pooling a session-level setting of one client is
  seen by the next client that gets the same server connection; the check shows that such a
  setting exists on this pooler (or that it pins sessions) and that a tenant set that way is
  never the tenant the policies see in another client's transaction.

Nothing is written: the replica is read-only, and the pooler's app checks roll back.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from infra.migrations.connection import ConnectionSpec
from infra.migrations.ledger import AppliedMigration, read_ledger
from infra.postdeploy.secrets import Credential, Credentials
from infra.postdeploy.tunnel import Tunnel
from infra.postdeploy.verify import Check, VerifyResult, verify_app

__all__ = [
    "Hop",
    "PoolerCheck",
    "ReplicaCheck",
    "ScalePlan",
    "ScaleReport",
    "TenantMinter",
    "pooled_isolation",
    "primary_minter",
    "run_scale_checks",
    "verify_readonly",
    "wait_for_replay",
]

_log = logging.getLogger(__name__)

#: ``(tenant) -> token`` for the signed tenant context (``app.set_tenant``); None on older schemas.
TenantMinter = Callable[[uuid.UUID], str]

_PROBE = "pp_scale.probe"  # a placeholder setting of our own: harmless wherever it lingers


@dataclass(frozen=True)
class Hop:
    """One more endpoint behind the bastion: its TLS name, the CA that signed it, a tunnel to it."""

    name: str  # "replica-0", "pooler"
    tls_name: str
    ca_file: Path
    tunnel: Tunnel
    dbname: str

    def params(self, cred: Credential, *, connect_timeout: int = 15) -> ConnectionSpec:
        password = cred.password
        return ConnectionSpec(
            host=self.tls_name,
            hostaddr="127.0.0.1",
            port=self.tunnel.local_port,
            dbname=self.dbname,
            user=cred.user,
            sslmode="verify-full",
            sslrootcert=str(self.ca_file),
            password=lambda: password,
            connect_timeout=connect_timeout,
        )


@dataclass(frozen=True)
class ScalePlan:
    replicas: Sequence[Hop] = ()
    pooler: Hop | None = None
    replay_timeout: float = 300.0  # s: RDS / Cloud SQL replicas usually replay within seconds


@dataclass(frozen=True)
class ReplicaCheck:
    name: str
    host: str
    newest: str | None  # the newest ledger row both sides show, e.g. "0007 readonly_hides_secrets (run ab12)"
    replayed: bool
    waited_seconds: float
    lag_bytes: int | None  # WAL the replica had still to replay when first asked
    verification: VerifyResult

    @property
    def ok(self) -> bool:
        return self.replayed and self.verification.ok


@dataclass(frozen=True)
class PoolerCheck:
    name: str
    host: str
    verification: VerifyResult

    @property
    def ok(self) -> bool:
        return self.verification.ok


@dataclass(frozen=True)
class ScaleReport:
    replicas: tuple[ReplicaCheck, ...]
    pooler: PoolerCheck | None

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.replicas) and (self.pooler is None or self.pooler.ok)

    def to_json(self) -> dict[str, object]:
        def checks(result: VerifyResult) -> list[dict[str, object]]:
            return [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in result.checks]

        return {
            "replicas": [
                {
                    "name": r.name,
                    "host": r.host,
                    "replayed": r.replayed,
                    "newest_ledger_row": r.newest,
                    "waited_seconds": round(r.waited_seconds, 3),
                    "lag_bytes": r.lag_bytes,
                    "checks": checks(r.verification),
                    "ok": r.ok,
                }
                for r in self.replicas
            ],
            "pooler": None
            if self.pooler is None
            else {
                "name": self.pooler.name,
                "host": self.pooler.host,
                "checks": checks(self.pooler.verification),
                "ok": self.pooler.ok,
            },
            "ok": self.ok,
        }

    def lines(self) -> list[str]:
        """The human summary (``format_report`` appends it)."""
        out: list[str] = []
        for r in self.replicas:
            status = "ok" if r.ok else "FAILED"
            lag = "n/a" if r.lag_bytes is None else f"{r.lag_bytes} bytes"
            replay = (
                f"replayed in {r.waited_seconds:.2f}s" if r.replayed else f"NOT replayed after {r.waited_seconds:.0f}s"
            )
            out.append(
                f"  replica:    {r.name} {status}: {replay}, lag {lag} at first look ({r.newest or 'empty ledger'})"
            )
            out += [f"    {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in r.verification.checks]
        if self.pooler is not None:
            out.append(f"  pooler:     {self.pooler.name} {'ok' if self.pooler.ok else 'FAILED'}")
            out += [f"    {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in self.pooler.verification.checks]
        return out


# -- replicas -----------------------------------------------------------------------------------


def _describe(row: AppliedMigration | None) -> str | None:
    return None if row is None else f"{row.version:04d} {row.name} (run {row.run_id}, {row.status})"


def _newest(conn: psycopg.Connection[Any]) -> AppliedMigration | None:
    rows, _env = read_ledger(conn)
    return rows[-1] if rows else None


def wait_for_replay(
    primary: psycopg.Connection[Any],
    replica: psycopg.Connection[Any],
    *,
    timeout: float,
    poll: float = 0.2,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[AppliedMigration | None, bool, float, int | None]:
    """Wait until ``replica`` shows the primary's newest ledger row (both autocommit connections).

    Returns (that row, replayed in time, seconds waited, WAL bytes the replica was behind at first).
    """
    newest = _newest(primary)
    # the insert position: with asynchronous commit the commit record may be inserted but not yet written
    row = primary.execute("SELECT pg_catalog.pg_current_wal_insert_lsn()::text").fetchone()
    assert row is not None
    target_lsn = str(row[0])
    started = clock()
    lag: int | None = None
    while True:
        row = replica.execute(
            "SELECT pg_catalog.pg_wal_lsn_diff(%s::pg_lsn, pg_catalog.pg_last_wal_replay_lsn())::bigint",
            (target_lsn,),
        ).fetchone()
        behind = None if row is None or row[0] is None else max(int(row[0]), 0)
        if lag is None:
            lag = behind
        if _newest(replica) == newest:
            return newest, True, clock() - started, lag
        if clock() - started >= timeout:
            return newest, False, clock() - started, lag
        sleep(poll)


def verify_readonly(conn: psycopg.Connection[Any], expected_user: str = "readonly") -> VerifyResult:
    """Read checks on a replica as ``readonly``: TLS, login, a standby, read-only, grants and RLS replayed."""
    checks = [Check("tls", conn.pgconn.ssl_in_use, f"ssl in use: {conn.pgconn.ssl_in_use}")]
    try:
        with conn.transaction(force_rollback=True):
            row = conn.execute(
                "SELECT current_user, pg_catalog.pg_is_in_recovery(), current_setting('transaction_read_only')"
            ).fetchone()
            assert row is not None
            who, standby, read_only = row
            checks.append(Check("login", who == expected_user, f"connected as {who!r}"))
            checks.append(Check("standby", standby is True, f"pg_is_in_recovery() = {standby}"))
            checks.append(Check("read-only", read_only == "on", f"transaction_read_only = {read_only}"))
            row = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE c.relrowsecurity AND c.relforcerowsecurity)"
                " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'app' AND c.relkind = 'r' AND EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a"
                "   WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)"
            ).fetchone()
            assert row is not None
            tables, forced = int(row[0]), int(row[1])
            checks.append(
                Check("rls-replayed", tables > 0 and forced == tables, f"{forced}/{tables} tenant tables force RLS")
            )
            row = conn.execute("SELECT count(*) FROM app.users").fetchone()
            visible = -1 if row is None else int(row[0])
            checks.append(Check("rls-unset", visible == 0, f"users rows visible with no tenant set: {visible}"))
            checks.append(_secret_column_refused(conn))
    except psycopg.Error as exc:
        checks.append(Check("session", False, f"{type(exc).__name__}: {_primary(exc)}"))
    return VerifyResult(tuple(checks))


def _secret_column_refused(conn: psycopg.Connection[Any]) -> Check:
    try:
        with conn.transaction():  # a savepoint: the refusal must not end the outer transaction
            conn.execute("SELECT password_hash FROM app.users LIMIT 0")
    except psycopg.errors.InsufficientPrivilege as exc:
        return Check("secrets-hidden", True, f"password hashes refused: {_primary(exc)}")
    return Check("secrets-hidden", False, "readonly could select app.users.password_hash")


# -- the pooler ---------------------------------------------------------------------------------


def _signed_context(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT to_regprocedure('app.current_tenant()') IS NOT NULL").fetchone()
    return bool(row and row[0])


def _effective_tenant(conn: psycopg.Connection[Any], signed: bool) -> tuple[object, int]:
    """The tenant the policies would use in a fresh transaction of ``conn``, and the server pid."""
    query = (
        "SELECT app.current_tenant()::text, pg_catalog.pg_backend_pid()"
        if signed
        else "SELECT nullif(current_setting('app.tenant_id', true), ''), pg_catalog.pg_backend_pid()"
    )
    try:
        row = conn.execute(query).fetchone()
    except psycopg.Error as exc:  # a leftover that breaks the next client is a failure too
        return f"error: {_primary(exc)}", -1
    assert row is not None
    return row[0], int(row[1])


def pooled_isolation(
    connect: Callable[[], psycopg.Connection[Any]], mint: TenantMinter | None, rounds: int = 5
) -> list[Check]:
    """Two clients through the pooler, autocommit: what one sets for its session, the other must not get as tenant.

    ``connect`` opens a client connection (as ``app``) through the pooler; ``mint`` makes a signed
    tenant token (None: the schema has no signed context, only the raw ``app.tenant_id`` setting).
    """
    checks: list[Check] = []
    with contextlib.ExitStack() as stack:
        a = stack.enter_context(connect())
        b = stack.enter_context(connect())
        a.autocommit = b.autocommit = True
        signed = _signed_context(a)

        # 1. Does a session-level setting cross clients on this pooler at all?
        marker = uuid.uuid4().hex
        crossed = 0
        for _ in range(rounds):
            a.execute("SELECT pg_catalog.set_config(%s, %s, false)", (_PROBE, marker))
            row = b.execute("SELECT current_setting(%s, true)", (_PROBE,)).fetchone()
            crossed += bool(row and row[0] == marker)
        checks.append(
            Check(
                "pooling-shares-state",
                True,
                f"a session setting of one client reached the other in {crossed}/{rounds} rounds "
                + ("(transaction pooling: server connections change hands)" if crossed else "(sessions pinned)"),
            )
        )

        # 2. The attacks: each leaves a tenant in client A's session; client B must see none.
        tenant = uuid.uuid4()
        # every statement is a SELECT, so _attack can append pg_backend_pid() to it
        raw_set = "SELECT pg_catalog.set_config('app.tenant_id', %s, false)"
        attacks: list[tuple[str, str, tuple[object, ...]]] = [("session SET app.tenant_id", raw_set, (str(tenant),))]
        if signed and mint is not None:
            token = mint(tenant)
            attacks += [
                ("app.set_tenant outside a transaction", "SELECT app.set_tenant(%s)", (token,)),
                ("session SET of a valid token", raw_set.replace("tenant_id", "tenant_token"), (token,)),
            ]
        for label, statement, args in attacks:
            checks.append(_attack(a, b, label, statement, args, signed, rounds))
        for _ in range(rounds):  # leave nothing behind on the server connections we touched
            for client in (a, b):
                with contextlib.suppress(psycopg.Error):
                    client.execute(
                        "SELECT pg_catalog.set_config('app.tenant_id', '', false),"
                        " pg_catalog.set_config('app.tenant_token', '', false), pg_catalog.set_config(%s, '', false)",
                        (_PROBE,),
                    )
    return checks


def _attack(
    a: psycopg.Connection[Any],
    b: psycopg.Connection[Any],
    label: str,
    statement: str,
    args: tuple[object, ...],
    signed: bool,
    rounds: int,
) -> Check:
    shared = 0
    for _ in range(rounds):
        # one statement: the setting and the server connection it landed on
        row = a.execute(f"{statement}, pg_catalog.pg_backend_pid()", args).fetchone()
        pid_a = None if row is None else row[-1]
        seen, pid_b = _effective_tenant(b, signed)
        shared += pid_a == pid_b
        if seen is not None:
            return Check(
                f"pooled-isolation: {label}",
                False,
                f"client B's transaction got tenant {seen!r} from client A's session (server pid {pid_b})",
            )
    return Check(
        f"pooled-isolation: {label}",
        True,
        f"no tenant reached the other client in {rounds} rounds ({shared} on a shared server connection)",
    )


def primary_minter(spec: ConnectionSpec) -> TenantMinter | None:
    """Signed tokens minted on the primary as ``spec`` (the migrator, a member of the minting function's
    owner, standing in for the sign-in service); None when the schema has no signed tenant context."""
    with spec.connect(autocommit=True) as conn:
        row = conn.execute("SELECT to_regprocedure('app.mint_tenant_token(uuid, interval)') IS NOT NULL").fetchone()
    if not (row and row[0]):
        return None

    def mint(tenant: uuid.UUID) -> str:
        with spec.connect(autocommit=True) as conn:
            token = conn.execute("SELECT app.mint_tenant_token(%s, interval '2 minutes')", (tenant,)).fetchone()
        assert token is not None
        return str(token[0])

    return mint


# -- orchestration ------------------------------------------------------------------------------


@contextlib.contextmanager
def _opened(hop: Hop) -> Iterator[Hop]:
    with hop.tunnel:
        yield hop


def run_scale_checks(
    plan: ScalePlan,
    credentials: Credentials,
    primary_migrator: ConnectionSpec,
) -> ScaleReport:
    """Every replica (replay, then read checks), then the pooler (app checks, isolation)."""
    replicas: list[ReplicaCheck] = []
    migrator = credentials.user("migrator")
    readonly = credentials.user("readonly")
    app = credentials.user("app")
    for hop in plan.replicas:
        with _opened(hop), primary_migrator.connect(autocommit=True) as primary:
            with hop.params(migrator).connect(autocommit=True) as replica:
                newest, replayed, waited, lag = wait_for_replay(primary, replica, timeout=plan.replay_timeout)
            _log.info("replica %s: replayed=%s after %.2fs (lag %s bytes)", hop.name, replayed, waited, lag)
            with hop.params(readonly).connect() as conn:
                verification = verify_readonly(conn)
        replicas.append(ReplicaCheck(hop.name, hop.tls_name, _describe(newest), replayed, waited, lag, verification))
    pooler: PoolerCheck | None = None
    if plan.pooler is not None:
        hop = plan.pooler
        mint = primary_minter(primary_migrator)
        with _opened(hop):
            # No server-side prepared statements through a transaction pooler: a statement psycopg
            # prepares on one server connection is missing (or already there) on the next
            # (PgBouncer < 1.21; "prepared statement "_pg3_0" already exists").
            with (
                hop.params(app).connect(prepare_threshold=None) as conn,
                primary_migrator.connect() as platform,  # the platform side, on the primary directly
            ):
                app_checks = verify_app(conn, platform)
            isolation = pooled_isolation(lambda: hop.params(app).connect(prepare_threshold=None), mint)
        pooler = PoolerCheck(hop.name, hop.tls_name, VerifyResult(app_checks.checks + tuple(isolation)))
    return ScaleReport(tuple(replicas), pooler)


def _primary(exc: psycopg.Error) -> str:
    return (exc.diag.message_primary if exc.diag is not None else None) or "no detail"
