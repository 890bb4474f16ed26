"""Point-in-time recovery for the local demo's PostgreSQL 16: WAL archive, base backup, restore.

What a cloud database does for us, done for real on the embedded server:

- :func:`archive_settings`: ``archive_mode=on`` with the documented ``archive_command``
  (``test ! -f <archive>/%f && cp %p <archive>/%f``: a finished WAL segment is copied once and never
  overwritten), and ``archive_timeout=60s`` so even a quiet demo ships its WAL at least once a
  minute (the local RPO bound; RDS uploads its transaction logs every five minutes).
- :func:`ensure_base_backup`: one base backup, taken through PostgreSQL's low-level API
  (PostgreSQL 16 docs, 26.3.3.2 "Making a Base Backup Using the Low Level API"):
  ``pg_backup_start(label, fast)`` on one session, a copy of the data directory without what
  that section says to leave out, ``pg_backup_stop(wait_for_archive)`` on the same session, and
  its ``backup_label`` written into the copy. Chosen over ``pg_basebackup``: the npm build ships
  no client tools, and the one ``pg_basebackup`` 16 on PyPI (the pgserver wheel) is a second
  PostgreSQL build to pin and would need a replication line in ``pg_hba.conf``; the low-level API
  is the running server's own. (During a backup the server writes full-page images even though
  the demo runs with ``full_page_writes=off``, so pages torn by the concurrent copy are repaired
  by WAL replay.)
- :func:`restore_cluster`: copy the base backup into a new cluster, ``recovery.signal``, a
  ``restore_command`` reading the archive, ``recovery_target_time`` (or the end of the archive
  for "latest"), ``recovery_target_action=promote``; start it and wait until it left recovery.

Everything runs over the superuser's Unix socket (no TCP, no SSL needed for this part).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from infra.errors import InfraError
from infra.local.pg import LocalPostgres

__all__ = [
    "ARCHIVE_DIR",
    "BASE_BACKUP_DIR",
    "ArchiveState",
    "BaseBackup",
    "RecoveryError",
    "archive_now",
    "archive_settings",
    "archive_state",
    "ensure_base_backup",
    "restore_cluster",
    "seal_archive",
    "switch_wal",
]

_log = logging.getLogger(__name__)

#: Under the demo's root: finished WAL segments, and the one base backup.
ARCHIVE_DIR = "wal-archive"
BASE_BACKUP_DIR = "base-backup"
ARCHIVE_TIMEOUT_SECONDS = 60

# PostgreSQL 16 docs 26.3.3.2: these may be left out of a base backup; the server recreates them.
# (Directories are kept, empty; their contents are skipped.)
_EMPTY_DIRS = frozenset(
    {"pg_wal", "pg_replslot", "pg_dynshmem", "pg_notify", "pg_serial", "pg_snapshots", "pg_stat_tmp", "pg_subtrans"}
)
_SKIP_FILES = frozenset({"postmaster.pid", "postmaster.opts", "backup_label", "tablespace_map", "pg_internal.init"})


class RecoveryError(InfraError):
    """The restored cluster did not reach its recovery target (the message says which and why)."""


def _conf_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _shell_quote(path: Path) -> str:
    return "'" + str(path).replace("'", "'\"'\"'") + "'"


def archive_settings(root: Path) -> dict[str, str]:
    """postgresql.conf lines that archive every finished WAL segment into ``root/wal-archive``."""
    archive = root.resolve() / ARCHIVE_DIR
    command = f"test ! -f {_shell_quote(archive)}/%f && cp %p {_shell_quote(archive)}/%f"
    return {
        "wal_level": "replica",
        "archive_mode": "on",
        "archive_command": _conf_quote(command),
        "archive_timeout": f"'{ARCHIVE_TIMEOUT_SECONDS}s'",
    }


@dataclass(frozen=True)
class BaseBackup:
    """Where the copy is and when it became consistent (the earliest time it restores to)."""

    path: Path
    started_at: dt.datetime
    stopped_at: dt.datetime
    stop_lsn: str

    @classmethod
    def load(cls, root: Path) -> BaseBackup | None:
        meta = root / BASE_BACKUP_DIR / "backup.json"
        try:
            doc = json.loads(meta.read_text())
        except (OSError, ValueError):
            return None
        return cls(
            path=root / BASE_BACKUP_DIR / "data",
            started_at=dt.datetime.fromisoformat(doc["started_at"]),
            stopped_at=dt.datetime.fromisoformat(doc["stopped_at"]),
            stop_lsn=str(doc["stop_lsn"]),
        )


@dataclass(frozen=True)
class ArchiveState:
    """What ``pg_stat_archiver`` says: archiving on, and when the newest segment was archived."""

    archiving: bool
    last_archived_at: dt.datetime | None
    failed_count: int


def _owner(pg: LocalPostgres) -> tuple[int, int]:
    st = pg.data.stat()
    return st.st_uid, st.st_gid


def _superuser(pg: LocalPostgres, **kwargs: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(pg.superuser_conninfo(), autocommit=True, **kwargs)


def prepare_archive(pg: LocalPostgres, root: Path) -> Path:
    """The archive directory, owned by the server's user (it runs ``archive_command``)."""
    archive = root.resolve() / ARCHIVE_DIR
    archive.mkdir(mode=0o700, exist_ok=True)
    uid, gid = _owner(pg)
    if archive.stat().st_uid != uid:
        os.chown(archive, uid, gid)
    return archive


def archive_state(pg: LocalPostgres) -> ArchiveState:
    with _superuser(pg) as conn:
        row = conn.execute(
            "SELECT current_setting('archive_mode') <> 'off', last_archived_time, failed_count FROM pg_stat_archiver"
        ).fetchone()
    assert row is not None
    return ArchiveState(archiving=bool(row[0]), last_archived_at=row[1], failed_count=int(row[2]))


def switch_wal(pg: LocalPostgres, timeout: float = 30.0) -> dt.datetime:
    """Close the current WAL segment and wait until it is archived; the time it was archived.

    What ``archive_timeout`` does every minute, on demand (tests, and a user who wants the
    newest commits restorable now).
    """
    with _superuser(pg) as conn:
        row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
        assert row is not None
        segment = str(row[0])
        deadline = time.monotonic() + timeout
        while True:
            done = conn.execute(
                "SELECT last_archived_time FROM pg_stat_archiver WHERE last_archived_wal >= %s", (segment,)
            ).fetchone()
            if done is not None and done[0] is not None:
                archived: dt.datetime = done[0]
                return archived
            if time.monotonic() >= deadline:
                raise InfraError(f"wal segment {segment} was not archived within {timeout:.0f}s; see {pg.log_path}")
            time.sleep(0.05)


def archive_now(pg: LocalPostgres) -> None:
    """Archive the current WAL segment when archiving is on (``local up`` ends with it)."""
    if archive_state(pg).archiving:
        switch_wal(pg)


def seal_archive(pg: LocalPostgres, timeout: float = 30.0) -> dt.datetime:
    """Commit an empty transaction and archive it: a commit after every time up to now.

    Recovery to a ``recovery_target_time`` stops at the first commit past that time and fails
    when the archive holds none ("recovery ended before configured recovery target was
    reached"); on a live server traffic and ``archive_timeout`` provide it. Taking a transaction
    id makes the commit write a WAL record; nothing else is written.
    """
    with _superuser(pg) as conn, conn.transaction():
        conn.execute("SELECT pg_current_xact_id()")
    return switch_wal(pg, timeout)


def _copy_data_dir(source: Path, target: Path) -> None:
    """Copy a live data directory, leaving out what the low-level backup docs say to leave out."""
    target.mkdir(mode=0o700, parents=True)
    for dirpath, dirs, files in os.walk(source):
        here = Path(dirpath)
        rel = here.relative_to(source)
        into = target / rel
        into.mkdir(mode=0o700, exist_ok=True)
        if rel.parts and rel.parts[0] in _EMPTY_DIRS:
            dirs[:] = []  # keep the directory, not what is in it
            continue
        dirs[:] = [d for d in dirs if not d.startswith("pgsql_tmp")]
        for name in files:
            if name in _SKIP_FILES or name.startswith("pgsql_tmp"):
                continue
            try:
                shutil.copy2(here / name, into / name)
            except FileNotFoundError:
                continue  # dropped while we copied (a relation or a temporary file): WAL replay redoes it


def ensure_base_backup(pg: LocalPostgres, root: Path) -> BaseBackup | None:
    """The demo's base backup: the one on disk, or a new one; None when archiving is off.

    Archiving needs ``archive_mode=on`` at server start: a demo started before this existed
    says so once (``local down`` then ``local up`` turns it on).
    """
    prepare_archive(pg, root)
    existing = BaseBackup.load(root)
    if existing is not None:
        return existing
    if not archive_state(pg).archiving:
        _log.warning("wal archiving is off on the demo's server; run `local down` and `local up` to turn it on")
        return None
    return take_base_backup(pg, root)


def take_base_backup(pg: LocalPostgres, root: Path) -> BaseBackup:
    """A new base backup of ``pg`` under ``root/base-backup`` (replacing none: call on an empty slot)."""
    slot = root.resolve() / BASE_BACKUP_DIR
    partial = slot.with_name(slot.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with _superuser(pg) as conn:
        row = conn.execute("SELECT clock_timestamp(), pg_backup_start(%s, true)", ("restore-drill base",)).fetchone()
        assert row is not None
        started: dt.datetime = row[0]
        try:
            _copy_data_dir(pg.data, partial / "data")
        except BaseException:
            conn.execute("SELECT pg_backup_stop(false)")
            shutil.rmtree(partial, ignore_errors=True)
            raise
        # waits until every segment the backup needs is archived: the copy is restorable on return
        stop = conn.execute("SELECT lsn::text, labelfile, clock_timestamp() FROM pg_backup_stop(true)").fetchone()
    assert stop is not None
    (partial / "data" / "backup_label").write_text(stop[1])
    meta = {"started_at": started.isoformat(), "stopped_at": stop[2].isoformat(), "stop_lsn": stop[0]}
    (partial / "backup.json").write_text(json.dumps(meta, indent=2) + "\n")
    partial.chmod(0o700)
    partial.rename(slot)
    _log.info("base backup taken at %s (lsn %s)", stop[2].isoformat(), stop[0])
    backup = BaseBackup.load(root)
    assert backup is not None
    return backup


def restore_cluster(
    backup: BaseBackup,
    archive: Path,
    target_root: Path,
    *,
    target_time: dt.datetime | None,
    server_names: tuple[str, ...],
    timeout: float = 120.0,
) -> LocalPostgres:
    """A new cluster under ``target_root``: the base backup, recovered to ``target_time`` (None: the
    end of the archive), promoted and accepting connections. Raises RecoveryError when the target
    was not reached (the time is past the newest archived transaction, or before the backup).
    """
    if target_root.exists():
        raise InfraError(f"{target_root} already exists; remove it (a previous drill was interrupted)")
    shutil.copytree(backup.path, target_root / "data", symlinks=True)
    (target_root / "data").chmod(0o700)
    (target_root / "data" / "recovery.signal").touch()
    settings = {
        "restore_command": _conf_quote(f"cp {_shell_quote(archive.resolve())}/%f %p"),
        "recovery_target_action": "'promote'",
        "archive_mode": "off",  # the copy must never write into the source's archive
    }
    if target_time is not None:
        settings["recovery_target_time"] = _conf_quote(target_time.astimezone(dt.UTC).isoformat())
    restored = LocalPostgres(target_root, server_names=server_names, settings=settings)
    try:
        restored.start()
    except InfraError:
        raise RecoveryError(_recovery_failure(restored, target_time)) from None
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(restored.superuser_conninfo(), autocommit=True, connect_timeout=5) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                if row is not None and not row[0]:
                    return restored
        except psycopg.OperationalError:
            if not restored.running():
                raise RecoveryError(_recovery_failure(restored, target_time)) from None
        if time.monotonic() >= deadline:
            restored.stop()
            raise RecoveryError(f"the restored cluster was still recovering after {timeout:.0f}s (the timeout used)")
        time.sleep(0.1)


def _recovery_failure(restored: LocalPostgres, target_time: dt.datetime | None) -> str:
    log = restored.log_path.read_text(errors="replace") if restored.log_path.exists() else ""
    fatal = [ln.split("FATAL:", 1)[1].strip() for ln in log.splitlines() if "FATAL:" in ln]
    when = target_time.isoformat() if target_time else "the end of the archive"
    if any("before configured recovery target was reached" in f for f in fatal):
        return (
            f"recovery to {when} ran out of archived wal before reaching it: no transaction after that time "
            "is archived yet; pick an earlier time or wait for the next archived segment"
        )
    detail = fatal[-1] if fatal else "no FATAL line in the server log"
    return f"the restored cluster did not recover to {when}: {detail}"
