"""The drill's pure decisions (ledger as of a time, plausible counts, the window, the report) and the
cloud orchestration with a recorded restorer: what is created, what is always deleted, the figures."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from infra.contract import StackOutputs
from infra.enums import BastionMode
from infra.errors import ContractError, RestoreError
from infra.migrations.connection import ConnectionSpec
from infra.migrations.ledger import AppliedMigration, LedgerStatus, TransactionMode
from infra.postdeploy.secrets import Credential, Credentials
from infra.postdeploy.stack import StackContext
from infra.postdeploy.verify import Check
from infra.restore import checks as checks_module
from infra.restore.checks import CopyCounts, RestorePoint, RowCount, SourceFacts, compare_ledgers, plausible_counts
from infra.restore.drill import restorer_for, run_stack_drill
from infra.restore.report import render
from infra.restore.restorer import CopyEndpoint
from infra.restore.window import RestoreWindow, parse_restore_time, restore_point

T0 = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "outputs"


def row(version: int, minutes: float, status: LedgerStatus = LedgerStatus.APPLIED) -> AppliedMigration:
    return AppliedMigration(
        version=version,
        filename=f"{version:04d}_m{version}.sql",
        name=f"m{version}",
        checksum=f"{version:064d}",
        status=status,
        transaction_mode=TransactionMode.TRANSACTION,
        applied_at=T0 + dt.timedelta(minutes=minutes),
        duration_ms=1.0,
        applied_by="ci@host",
        db_user="migrator",
        run_id="r",
    )


SOURCE = (row(1, 0), row(2, 10), row(3, 20))


def test_the_copy_holds_the_source_ledger_as_of_the_restore_time() -> None:
    at = RestorePoint(T0 + dt.timedelta(minutes=15), T0 + dt.timedelta(minutes=15))
    ok = compare_ledgers(SOURCE[:2], SOURCE, at)
    assert ok == Check("ledger", True, "2 migration(s) (0001, 0002), as the source's ledger at the restore time")
    lost = compare_ledgers(SOURCE[:1], SOURCE, at)
    assert lost == Check("ledger", False, "missing 0002_m2")
    future = compare_ledgers(SOURCE, SOURCE, at)
    assert future == Check("ledger", False, "not in the source's ledger by then 0003_m3")


def test_latest_accepts_what_was_applied_between_the_window_read_and_the_request() -> None:
    latest = RestorePoint(T0 + dt.timedelta(minutes=15), T0 + dt.timedelta(minutes=25))
    assert compare_ledgers(SOURCE[:2], SOURCE, latest).ok
    assert compare_ledgers(SOURCE, SOURCE, latest).ok
    assert not compare_ledgers(SOURCE[:1], SOURCE, latest).ok


def test_a_row_committed_within_the_slack_of_the_restore_time_may_be_on_either_side() -> None:
    edge = RestorePoint(SOURCE[1].applied_at, SOURCE[1].applied_at)
    assert compare_ledgers(SOURCE[:1], SOURCE, edge).ok
    assert compare_ledgers(SOURCE[:2], SOURCE, edge).ok


def _counts(**counts: int) -> CopyCounts:
    return CopyCounts(counts, unbalanced_wallets=0, sample_tenant=None, sample_users=0)


def test_plausible_counts_need_balanced_wallets_and_no_more_append_only_rows_than_the_source() -> None:
    source = SourceFacts((), {"coin_transactions": 10, "tenants": 2}, exact=True)
    ok, rows = plausible_counts(_counts(coin_transactions=8, tenants=3), source)
    assert ok.ok
    assert rows == (RowCount("coin_transactions", 8, 10, True), RowCount("tenants", 3, 2, True))
    more, _ = plausible_counts(_counts(coin_transactions=11), source)
    assert more.detail == "app.coin_transactions holds 11 rows, more than the source's 10 (append-only)"
    torn = CopyCounts({"virtual_wallets": 2, "coin_transactions": 3}, 1, None, 0)
    assert plausible_counts(torn, source)[0].detail == (
        "1 wallet(s) whose balance differs from the sum of their transactions"
    )
    estimate = SourceFacts((), {"coin_transactions": 5}, exact=False)  # an estimate is shown, never judged
    assert plausible_counts(_counts(coin_transactions=8), estimate)[0].ok
    assert not plausible_counts(_counts(), source)[0].ok


def test_restore_times() -> None:
    assert parse_restore_time("latest") is None
    assert parse_restore_time("2026-11-30T13:00:00+01:00") == T0
    assert parse_restore_time("2026-11-30T12:00:00Z") == T0
    window = RestoreWindow(T0 - dt.timedelta(days=7), T0)
    assert restore_point(None, window, T0 + dt.timedelta(minutes=3)) == (
        T0,
        RestorePoint(T0, T0 + dt.timedelta(minutes=3)),
    )
    with pytest.raises(RestoreError, match=r"outside the restore window 2026-11-23T12:00:00\+00:00 \.\. 2026-11-30T12"):
        restore_point(T0 + dt.timedelta(seconds=1), window, T0)
    with pytest.raises(RestoreError, match="outside the restore window"):
        restore_point(T0 - dt.timedelta(days=8), window, T0)


# -- the cloud orchestration, with a recorded restorer ---------------------------------------------


@dataclass
class RecordedRestorer:
    window_: RestoreWindow
    fail_wait: bool = False
    calls: list[str] = field(default_factory=list)
    platform: str = "aws"
    source: str = "pp-dev-pg"

    def copy_name(self, started_at: dt.datetime) -> str:
        return f"pp-dev-pg-drill-{started_at:%Y%m%d%H%M}"

    def window(self) -> RestoreWindow:
        self.calls.append("window")
        return self.window_

    def restore(self, copy: str, when: dt.datetime | None, tags: Mapping[str, str]) -> None:
        self.calls.append(f"restore {copy} {when.isoformat() if when else 'latest'} {dict(tags)}")

    def wait(self, copy: str) -> CopyEndpoint:
        self.calls.append(f"wait {copy}")
        if self.fail_wait:
            raise RestoreError(f"restored instance {copy!r} did not become available within 90 min")
        return CopyEndpoint(
            copy,
            f"{copy}.c1.eu-west-1.rds.amazonaws.com",
            f"{copy}.c1.eu-west-1.rds.amazonaws.com",
            5432,
            Check("placement", True, "not public"),
        )

    def delete(self, copy: str) -> str:
        self.calls.append(f"delete {copy}")
        return "deleting"


class NoTunnel:
    kind = BastionMode.SSM
    local_port = 15432

    def __init__(self, opened: list[tuple[str, int]], address: str, port: int) -> None:
        opened.append((address, port))

    def __enter__(self) -> NoTunnel:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        return None


def _context(tmp_path: Path) -> StackContext:
    outputs = StackOutputs.parse(json.loads((FIXTURES / "aws-dev.json").read_text()))
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
    creds = Credentials(Credential("pgadmin", "a"), {r: Credential(r, "p") for r in ("migrator", "app", "readonly")})
    return StackContext("dev", outputs, creds, None, ca, None)  # type: ignore[arg-type]


SOURCE_FACTS = SourceFacts(SOURCE, {}, exact=False)


def test_the_drill_restores_verifies_through_the_bastion_deletes_and_reports_rpo_rto(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, str]] = []

    def verify(migrator: ConnectionSpec, readonly: ConnectionSpec, source: SourceFacts, point: RestorePoint) -> Any:
        seen.extend([(migrator.user or "", migrator.host or ""), (readonly.user or "", readonly.host or "")])
        assert source is SOURCE_FACTS
        assert point == RestorePoint(T0 - dt.timedelta(minutes=4), T0)
        return (Check("ledger", True, "3 migration(s)"),), ()

    monkeypatch.setattr(checks_module, "verify_copy", verify)
    restorer = RecordedRestorer(RestoreWindow(T0 - dt.timedelta(days=7), T0 - dt.timedelta(minutes=4)))
    opened: list[tuple[str, int]] = []
    report = run_stack_drill(
        "dev",
        _context(tmp_path),
        restorer,
        None,
        open_tunnel=lambda address, port: NoTunnel(opened, address, port),  # type: ignore[arg-type,return-value]
        clock=lambda: T0,
        read_source_of=lambda ctx: SOURCE_FACTS,
    )
    copy = "pp-dev-pg-drill-202611301200"
    host = f"{copy}.c1.eu-west-1.rds.amazonaws.com"
    assert restorer.calls == [
        "window",
        f"restore {copy} latest {{'purpose': 'restore-drill', 'stack': 'dev', 'source': 'pp-dev-pg'}}",
        f"wait {copy}",
        f"delete {copy}",
    ]
    assert opened == [(host, 5432)]  # the bastion forwards to the copy, not to the source
    assert seen == [("migrator", host), ("readonly", host)]  # verify-full checks the copy's own name
    assert report.ok
    assert report.rpo_seconds == 240.0
    assert report.rto_seconds >= 0
    assert report.cleanup == "deleting"
    assert [c.name for c in report.checks] == ["placement", "ledger"]
    markdown = render(report, markdown=True)
    assert "| RPO | 4m00s |" in markdown
    assert json.loads(render(report, as_json=True))["rpo_seconds"] == 240.0


def test_a_copy_that_never_becomes_available_is_still_deleted(tmp_path: Path) -> None:
    restorer = RecordedRestorer(RestoreWindow(None, T0), fail_wait=True)
    with pytest.raises(RestoreError, match="did not become available within 90 min"):
        run_stack_drill(
            "dev",
            _context(tmp_path),
            restorer,
            None,
            open_tunnel=lambda a, p: None,  # type: ignore[arg-type,return-value]
            clock=lambda: T0,
            read_source_of=lambda ctx: SOURCE_FACTS,
        )
    assert restorer.calls[-1] == "delete pp-dev-pg-drill-202611301200"


def test_a_time_outside_the_window_creates_nothing(tmp_path: Path) -> None:
    restorer = RecordedRestorer(RestoreWindow(None, T0))
    with pytest.raises(RestoreError, match="outside the restore window"):
        run_stack_drill(
            "dev",
            _context(tmp_path),
            restorer,
            T0 + dt.timedelta(hours=1),
            open_tunnel=lambda a, p: None,  # type: ignore[arg-type,return-value]
            clock=lambda: T0,
            read_source_of=lambda ctx: SOURCE_FACTS,
        )
    assert restorer.calls == ["window"]


def test_a_stack_without_db_instance_is_told_to_update() -> None:
    doc = json.loads((FIXTURES / "aws-dev.json").read_text())
    doc.pop("db_instance", None)
    with pytest.raises(ContractError, match=r"stack output 'db_instance' is missing .*run `pulumi up`"):
        restorer_for(StackOutputs.parse(doc))
