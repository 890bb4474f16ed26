"""The Cloud SQL side of the drill, replayed from documents in the Admin API v1 shapes
(``tests/fixtures/cloudsql``: written from the API reference, not captured from a live project;
see its README) through a fake ``AuthorizedSession`` that checks each request in order."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from infra.contract import CloudSqlInstance
from infra.errors import RestoreError
from infra.restore.gcp import API, CloudSqlClone

DOCS = Path(__file__).resolve().parents[2] / "fixtures" / "cloudsql"
INSTANCE = CloudSqlInstance(name="pp-dev-pg", project="acme-data-123", region="europe-west1")
CLONE = "pp-dev-pg-drill-202611301300"
BASE = f"{API}/projects/acme-data-123"


def doc(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DOCS / f"{name}.json").read_text())
    return loaded


@dataclass
class Response:
    status_code: int
    body: Any

    def json(self) -> Any:
        return copy.deepcopy(self.body)


@dataclass
class FakeSession:
    """Answers requests in order from (method, path, status, document); records the bodies sent."""

    script: list[tuple[str, str, int, Any]]
    sent: list[tuple[str, str, Any]] = field(default_factory=list)

    def request(self, method: str, url: str, **kwargs: Any) -> Response:
        assert self.script, f"unexpected request {method} {url}"
        want_method, want_path, status, body = self.script.pop(0)
        assert (method, url) == (want_method, f"{BASE}/{want_path}")
        self.sent.append((method, url, kwargs.get("json")))
        return Response(status, body)


@pytest.fixture
def session() -> Iterator[FakeSession]:
    fake = FakeSession([])
    yield fake
    assert not fake.script, f"requests not made: {fake.script}"


def _clone(session: FakeSession, **options: Any) -> CloudSqlClone:
    return CloudSqlClone(INSTANCE, session=session, sleep=lambda _s: None, **options)


def _window_script() -> list[tuple[str, str, int, Any]]:
    return [
        ("GET", "instances/pp-dev-pg", 200, doc("instance-source")),
        ("GET", "instances/pp-dev-pg/getLatestRecoveryTime", 200, doc("latest-recovery-time")),
    ]


def test_the_window_is_cloud_sqls_recovery_times(session: FakeSession) -> None:
    session.script += _window_script()
    window = _clone(session).window()
    assert window.newest == dt.datetime(2026, 11, 30, 12, 55, 41, 207000, tzinfo=dt.UTC)
    assert window.earliest == dt.datetime(2026, 11, 23, 12, 55, 41, 207000, tzinfo=dt.UTC)


def test_pitr_off_is_one_line(session: FakeSession) -> None:
    source = doc("instance-source")
    source["settings"]["backupConfiguration"]["pointInTimeRecoveryEnabled"] = False
    session.script.append(("GET", "instances/pp-dev-pg", 200, source))
    with pytest.raises(RestoreError, match=r"^point-in-time recovery is off for 'pp-dev-pg'; turn on backups"):
        _clone(session).window()


def test_no_backup_yet_is_one_line(session: FakeSession) -> None:
    session.script += [
        ("GET", "instances/pp-dev-pg", 200, doc("instance-source")),
        ("GET", "instances/pp-dev-pg/getLatestRecoveryTime", 400, doc("error-no-backup")),
    ]
    with pytest.raises(RestoreError) as info:
        _clone(session).window()
    assert str(info.value) == (
        "no backup of 'pp-dev-pg' yet: cloud sql has no recovery time (http 400: Invalid request: No successful "
        "backup run found for instance pp-dev-pg.); retry after the first automated backup"
    )


def test_a_missing_instance_is_named(session: FakeSession) -> None:
    session.script.append(("GET", "instances/pp-dev-pg", 404, doc("error-404")))
    with pytest.raises(RestoreError, match="cloud sql instance 'pp-dev-pg' not found in 'acme-data-123'"):
        _clone(session).window()


def test_a_clone_to_a_point_in_time_then_relabelled_and_unprotected(session: FakeSession) -> None:
    when = dt.datetime(2026, 11, 30, 12, 0, 30, tzinfo=dt.UTC)
    session.script += [
        ("POST", "instances/pp-dev-pg/clone", 200, doc("operation-clone-running")),
        ("GET", "operations/3f1c2a9e-7b1d-4c1e-9a55-0b7e00000001", 200, doc("operation-clone-running")),
        ("GET", "operations/3f1c2a9e-7b1d-4c1e-9a55-0b7e00000001", 200, doc("operation-clone-done")),
        ("GET", f"instances/{CLONE}", 200, doc("instance-source")),  # the clone starts with the source's labels
        ("PATCH", f"instances/{CLONE}", 200, doc("operation-update-done")),
    ]
    _clone(session).restore(CLONE, when, {"purpose": "restore-drill", "stack": "gcp-dev"})
    clone_body = session.sent[0][2]
    assert clone_body == {
        "cloneContext": {
            "kind": "sql#cloneContext",
            "destinationInstanceName": CLONE,
            "pointInTime": "2026-11-30T12:00:30Z",
        }
    }
    assert session.sent[-1][2] == {
        "settings": {
            "deletionProtectionEnabled": False,
            "userLabels": {
                "environment": "dev",
                "managed-by": "pulumi",
                "purpose": "restore-drill",
                "stack": "gcp-dev",
            },
        }
    }


def test_latest_is_cloned_at_the_latest_recovery_time_never_the_live_instance(session: FakeSession) -> None:
    session.script += [
        *_window_script(),
        ("POST", "instances/pp-dev-pg/clone", 200, doc("operation-clone-done")),
        ("GET", f"instances/{CLONE}", 200, doc("instance-clone")),
        ("PATCH", f"instances/{CLONE}", 200, doc("operation-update-done")),
    ]
    _clone(session).restore(CLONE, None, {})
    assert session.sent[2][2]["cloneContext"]["pointInTime"] == "2026-11-30T12:55:41.207000Z"


def test_a_failed_clone_operation_is_one_line(session: FakeSession) -> None:
    session.script.append(("POST", "instances/pp-dev-pg/clone", 200, doc("operation-clone-failed")))
    with pytest.raises(RestoreError) as info:
        _clone(session).restore(CLONE, dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC), {})
    assert str(info.value) == (
        f"the clone {CLONE!r} failed: ERROR_RDBMS: the point in time is not within the available recovery window"
    )


def test_a_clone_that_never_finishes_names_the_timeout_used(session: FakeSession) -> None:
    session.script += [("POST", "instances/pp-dev-pg/clone", 200, doc("operation-clone-running"))]
    session.script += [
        ("GET", "operations/3f1c2a9e-7b1d-4c1e-9a55-0b7e00000001", 200, doc("operation-clone-running"))
    ] * 3
    with pytest.raises(RestoreError) as info:
        _clone(session, wait_delay=20.0, wait_attempts=3).restore(
            CLONE, dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC), {}
        )
    assert str(info.value) == (
        f"the clone {CLONE!r} did not finish within 1 min (3 polls every 20s; last status RUNNING); "
        "operation 3f1c2a9e-7b1d-4c1e-9a55-0b7e00000001"
    )


def test_the_clone_is_reached_by_private_address_and_checked_by_its_own_name(session: FakeSession) -> None:
    session.script += [*_window_script(), ("GET", f"instances/{CLONE}", 200, doc("instance-clone"))]
    restorer = _clone(session)
    restorer.window()  # learns the source's private network
    endpoint = restorer.wait(CLONE)
    assert endpoint.address == "10.64.0.7"
    assert endpoint.tls_name == "5b0d4e1f9c22.a3e72be2d7a64.europe-west1.sql.goog"
    assert endpoint.ca_pem.startswith("-----BEGIN CERTIFICATE-----")
    assert endpoint.placement.ok, endpoint.placement.detail


def test_a_clone_on_another_network_fails_the_placement_check(session: FakeSession) -> None:
    elsewhere = doc("instance-clone")
    elsewhere["settings"]["ipConfiguration"]["privateNetwork"] = "projects/acme-data-123/global/networks/default"
    session.script += [*_window_script(), ("GET", f"instances/{CLONE}", 200, elsewhere)]
    restorer = _clone(session)
    restorer.window()
    placement = restorer.wait(CLONE).placement
    assert not placement.ok
    assert placement.detail == "expected but not found: on the source's private network"


def test_the_clone_is_deleted_and_a_failed_delete_names_the_command(session: FakeSession) -> None:
    session.script += [
        ("DELETE", f"instances/{CLONE}", 200, doc("operation-delete-pending")),
        ("DELETE", f"instances/{CLONE}", 409, {"error": {"code": 409, "message": "Operation in progress"}}),
    ]
    restorer = _clone(session)
    assert restorer.delete(CLONE) == "deleting"
    with pytest.raises(RestoreError, match=f"gcloud sql instances delete {CLONE} --project acme-data-123"):
        restorer.delete(CLONE)
