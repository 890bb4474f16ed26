"""Restore times: parsing ``--to``, the restore window, and the point a copy should hold.

A window is what the backups offer: ``earliest`` (the oldest point, when known) to ``newest``
(RDS ``LatestRestorableTime``, Cloud SQL ``latestRecoveryTime``, the demo's last archived WAL).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from infra.errors import RestoreError
from infra.restore.checks import RestorePoint

__all__ = ["RestoreWindow", "parse_restore_time", "restore_point"]


@dataclass(frozen=True)
class RestoreWindow:
    earliest: dt.datetime | None
    newest: dt.datetime


def parse_restore_time(text: str) -> dt.datetime | None:
    """``latest`` → None; otherwise an ISO 8601 time with a UTC offset (``2026-11-30T12:00:00Z``)."""
    if text.strip().lower() == "latest":
        return None
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise RestoreError(
            f"--to {text!r} is not a time; give ISO 8601 with an offset (2026-11-30T12:00:00Z) or 'latest'"
        ) from None
    if when.tzinfo is None:
        raise RestoreError(f"--to {text!r} has no UTC offset; add one (e.g. {text}Z for UTC)")
    return when.astimezone(dt.UTC)


def restore_point(
    requested: dt.datetime | None, window: RestoreWindow, requested_at: dt.datetime
) -> tuple[dt.datetime, RestorePoint]:
    """The time to restore to and what the copy should then hold; RestoreError outside the window.

    ``latest`` restores to the newest restorable time, which the cloud may move forward between
    our read and the request: the copy holds everything up to ``newest`` and nothing after
    ``requested_at``.
    """
    if requested is None:
        return window.newest, RestorePoint(window.newest, max(window.newest, requested_at))
    earliest = window.earliest.isoformat() if window.earliest else "(unknown)"
    if requested > window.newest or (window.earliest is not None and requested < window.earliest):
        raise RestoreError(
            f"requested time {requested.isoformat()} is outside the restore window {earliest} .. "
            f"{window.newest.isoformat()}; pick a time inside it or use --to latest"
        )
    return requested, RestorePoint(requested, requested)
