"""The local drill, for real: the demo's base backup and archived WAL, recovered into a second cluster.

An explicit time needs a commit after it in the archive (recovery stops at the first commit past the
target, and fails when none is archived): the drill commits an empty transaction and archives it
first, which traffic and ``archive_timeout`` do on a live server. The window runs from the end of
the base backup (``local up`` takes it before migrating) to the
newest archived WAL segment (``pg_stat_archiver.last_archived_time``; the demo archives at least
once a minute). The source's ledger and exact row counts come through the superuser's Unix socket;
the copy is reached over TLS ``verify-full`` as ``migrator`` and ``readonly`` with the demo's own
passwords (they are in the restored catalog), and removed afterwards.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from infra.errors import RestoreError
from infra.local import backup
from infra.local.demo import DB_NAME, TLS_NAME, DemoState, LocalDemo
from infra.local.pg import LocalPostgres
from infra.postdeploy.run import Route
from infra.restore.checks import read_source, verify_copy
from infra.restore.report import DrillReport
from infra.restore.window import RestoreWindow, restore_point

__all__ = ["COPY_DIR", "local_window", "run_local_drill"]

#: Under the demo's root, while a drill runs.
COPY_DIR = "restore-drill"


def local_window(demo: LocalDemo, pg: LocalPostgres) -> tuple[backup.BaseBackup, RestoreWindow]:
    """The base backup and the window it opens; RestoreError when there is none or archiving is off."""
    base = backup.BaseBackup.load(demo.root)
    if base is None:
        raise RestoreError("no backup yet: the demo has no base backup; run `python -m infra local up` (it takes one)")
    state = backup.archive_state(pg)
    if not state.archiving:
        raise RestoreError(
            "point-in-time recovery is off: the demo's server does not archive wal; "
            "run `python -m infra local down` and `local up` to turn it on"
        )
    newest = max(base.stopped_at, state.last_archived_at or base.stopped_at)
    return base, RestoreWindow(base.stopped_at, newest)


def run_local_drill(
    root: Path,
    requested: dt.datetime | None,
    *,
    keep: bool = False,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> DrillReport:
    """Restore the demo to ``requested`` (None: the newest archived point) and verify the copy.

    ``keep`` leaves the copy running under ``<root>/restore-drill`` (tests inspect it, then call
    :func:`remove_copy`); the command line always removes it.
    """
    demo = LocalDemo(root)
    state = DemoState.load(demo.root)
    if state is None:
        raise RestoreError("the local demo is not running; run `python -m infra local up` (make demo) first")
    source_pg = demo.postgres(state.pg_port)
    started_at = clock()
    base, window = local_window(demo, source_pg)
    restore_point(requested, window, started_at)
    if requested is not None:
        backup.seal_archive(source_pg)  # recovery stops at the first commit after the time: archive one
    with psycopg.connect(source_pg.superuser_conninfo(DB_NAME), autocommit=True) as conn:
        source = read_source(conn, exact=True)
    restored_to, point = restore_point(requested, window, clock())
    credentials = demo.credentials()
    began = time.monotonic()
    copy_root = demo.root / COPY_DIR
    try:
        copy = backup.restore_cluster(
            base, demo.root / backup.ARCHIVE_DIR, copy_root, target_time=requested, server_names=(TLS_NAME,)
        )
        route = Route(TLS_NAME, copy.port, DB_NAME, copy.tls.ca_cert)
        checks, rows = verify_copy(
            route.params(credentials.user("migrator")), route.params(credentials.user("readonly")), source, point
        )
        rto = time.monotonic() - began
    except BaseException:
        remove_copy(demo.root)
        raise
    if keep:
        cleanup = f"kept at {copy_root} (port {copy.port})"
    else:
        remove_copy(demo.root)
        cleanup = "removed"
    return DrillReport(
        target="local",
        platform="local",
        source=str(source_pg.data),
        copy=str(copy_root / "data"),
        requested="latest" if requested is None else requested.isoformat(),
        restored_to=restored_to,
        earliest=window.earliest,
        newest=window.newest,
        started_at=started_at,
        rpo_seconds=(started_at - window.newest).total_seconds(),
        rto_seconds=rto,
        checks=checks,
        row_counts=rows,
        cleanup=cleanup,
    )


def remove_copy(root: Path) -> None:
    """Stop and delete a drill copy under ``root`` (harmless when there is none)."""
    copy_root = root.resolve() / COPY_DIR
    if copy_root.exists():
        LocalPostgres(copy_root).destroy()
