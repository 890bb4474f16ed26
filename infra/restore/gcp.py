"""GCP: a Cloud SQL clone to a point in time, on the source's private network, then its deletion.

Cloud SQL Admin API v1 (https://cloud.google.com/sql/docs/postgres/admin-api/rest/v1), called over
REST through ``google-auth``'s ``AuthorizedSession`` with Application Default Credentials:

- ``GET  projects/{p}/instances/{i}``: ``settings.backupConfiguration.pointInTimeRecoveryEnabled``,
  ``settings.ipConfiguration.privateNetwork``, ``ipAddresses[type=PRIVATE]``, ``dnsNames`` and
  ``serverCaCert``;
- ``GET  projects/{p}/instances/{i}/getLatestRecoveryTime``: ``latestRecoveryTime`` and
  ``earliestRecoveryTime`` (the window);
- ``POST projects/{p}/instances/{i}/clone`` with ``cloneContext.destinationInstanceName`` and
  ``cloneContext.pointInTime`` (RFC 3339): a new instance with the source's settings, including its
  private network and no public IP; returns an Operation;
- ``GET  projects/{p}/operations/{op}`` until ``status`` is ``DONE``, then ``error.errors[]``;
- ``PATCH projects/{p}/instances/{i}``: the clone inherits deletion protection in production and
  the source's labels, so the drill turns the one off and labels it as a drill;
- ``DELETE projects/{p}/instances/{i}``.

Why REST and not a client library: five calls. ``google-auth`` (and ``requests``) are already
pinned for Secret Manager; ``google-cloud-sql`` is a 0.1.x GAPIC client, and
``google-api-python-client`` is a large discovery-based client in maintenance mode. The tests
replay documents in these shapes through a fake session.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from infra.contract import CloudSqlInstance
from infra.errors import RestoreError
from infra.postdeploy.verify import Check
from infra.restore.restorer import CopyEndpoint
from infra.restore.window import RestoreWindow

__all__ = ["API", "CloudSqlClone", "HttpSession"]

_log = logging.getLogger(__name__)

API = "https://sqladmin.googleapis.com/v1"
_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


class HttpResponse(Protocol):
    status_code: int

    def json(self) -> Any: ...


class HttpSession(Protocol):
    """What is used of ``google.auth.transport.requests.AuthorizedSession``."""

    def request(self, method: str, url: str, **kwargs: Any) -> HttpResponse: ...


def _rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _time(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


class CloudSqlClone:
    """Point-in-time clones of one Cloud SQL instance (the stack's ``db_instance`` output)."""

    platform = "gcp"

    def __init__(
        self,
        instance: CloudSqlInstance,
        *,
        session: HttpSession | None = None,
        wait_delay: float = 10.0,
        wait_attempts: int = 360,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.instance = instance
        self.source = instance.name
        self._session = session
        self.wait_delay = wait_delay
        self.wait_attempts = wait_attempts
        self._sleep = sleep
        self._source_network: str | None = None

    @property
    def session(self) -> HttpSession:
        if self._session is None:
            import google.auth
            from google.auth.transport.requests import AuthorizedSession

            try:
                credentials, _project = google.auth.default(scopes=_SCOPES)
            except google.auth.exceptions.DefaultCredentialsError:
                raise RestoreError(
                    "no google credentials; run `gcloud auth application-default login` (or set a service account)"
                ) from None
            session: HttpSession = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
            self._session = session
        return self._session

    def _url(self, path: str) -> str:
        return f"{API}/projects/{self.instance.project}/{path}"

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        response = self.session.request(method, self._url(path), json=body, timeout=60)
        try:
            doc = response.json()
        except ValueError:
            doc = {}
        if response.status_code >= 400:
            error = doc.get("error", {}) if isinstance(doc, dict) else {}
            raise _ApiError(response.status_code, str(error.get("message", "no detail")).splitlines()[0][:300])
        return doc if isinstance(doc, dict) else {}

    def copy_name(self, started_at: dt.datetime) -> str:
        # lowercase letters, digits, hyphens; names cannot be reused for a week, so a minute stamp
        return f"{self.source[:70].rstrip('-')}-drill-{started_at:%Y%m%d%H%M}"

    def window(self) -> RestoreWindow:
        try:
            source = self._call("GET", f"instances/{self.source}")
        except _ApiError as exc:
            if exc.status == 404:
                raise RestoreError(
                    f"cloud sql instance {self.source!r} not found in {self.instance.project!r}; check the stack"
                ) from None
            raise RestoreError(f"cannot read cloud sql instance {self.source!r}: {exc}") from None
        settings = source.get("settings", {})
        backups = settings.get("backupConfiguration", {})
        if not backups.get("enabled") or not backups.get("pointInTimeRecoveryEnabled"):
            raise RestoreError(
                f"point-in-time recovery is off for {self.source!r}; turn on backups with point-in-time "
                "recovery (the program does: run `pulumi up`)"
            )
        self._source_network = settings.get("ipConfiguration", {}).get("privateNetwork")
        try:
            times = self._call("GET", f"instances/{self.source}/getLatestRecoveryTime")
        except _ApiError as exc:
            raise RestoreError(
                f"no backup of {self.source!r} yet: cloud sql has no recovery time ({exc}); "
                "retry after the first automated backup"
            ) from None
        newest = _time(times.get("latestRecoveryTime"))
        if newest is None:
            raise RestoreError(f"no backup of {self.source!r} yet: cloud sql reports no latest recovery time")
        return RestoreWindow(_time(times.get("earliestRecoveryTime")), newest)

    def restore(self, copy: str, when: dt.datetime | None, tags: Mapping[str, str]) -> None:
        if when is None:
            # a clone without pointInTime copies the live instance, not a backup: always name the time
            when = self.window().newest
        body = {
            "cloneContext": {"kind": "sql#cloneContext", "destinationInstanceName": copy, "pointInTime": _rfc3339(when)}
        }
        _log.info("cloning %s to %s as %s", self.source, _rfc3339(when), copy)
        try:
            operation = self._call("POST", f"instances/{self.source}/clone", body)
            self._wait_for(operation, f"the clone {copy!r}")
            # the clone carries the source's settings: production's deletion protection and labels
            labels = {**self._labels(copy), **{k.lower(): v.lower() for k, v in tags.items()}}
            patch = {"settings": {"deletionProtectionEnabled": False, "userLabels": labels}}
            self._wait_for(self._call("PATCH", f"instances/{copy}", patch), f"relabelling {copy!r}")
        except _ApiError as exc:
            if exc.status == 400 and "time" in exc.message.lower():
                raise RestoreError(
                    f"cloud sql refused the restore time {_rfc3339(when)}: {exc.message}; pick a time inside the window"
                ) from None
            raise RestoreError(f"cloud sql refused the clone of {self.source!r}: {exc}") from None

    def _labels(self, copy: str) -> dict[str, str]:
        found = self._call("GET", f"instances/{copy}")
        labels = found.get("settings", {}).get("userLabels", {})
        return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}

    def _wait_for(self, operation: Mapping[str, Any], what: str) -> None:
        name = operation.get("name")
        if not isinstance(name, str) or not name:
            raise RestoreError(f"cloud sql returned no operation for {what}")
        for _ in range(self.wait_attempts):
            if operation.get("status") == "DONE":
                errors = (operation.get("error") or {}).get("errors") or []
                if errors:
                    first = errors[0]
                    raise RestoreError(f"{what} failed: {first.get('code', 'error')}: {first.get('message', '')[:300]}")
                return
            self._sleep(self.wait_delay)
            operation = self._call("GET", f"operations/{name}")
        timeout = self.wait_delay * self.wait_attempts
        raise RestoreError(
            f"{what} did not finish within {timeout / 60:.0f} min ({self.wait_attempts} polls every "
            f"{self.wait_delay:.0f}s; last status {operation.get('status', 'unknown')}); operation {name}"
        )

    def wait(self, copy: str) -> CopyEndpoint:
        # the clone operation is DONE only when the instance is RUNNABLE: check it, do not assume
        found = self._call("GET", f"instances/{copy}")
        if found.get("state") != "RUNNABLE":
            raise RestoreError(f"the clone {copy!r} is {found.get('state', 'unknown')}, not RUNNABLE")
        address = next((a.get("ipAddress") for a in found.get("ipAddresses", []) if a.get("type") == "PRIVATE"), None)
        tls_name = next(
            (
                str(d.get("name", "")).rstrip(".")
                for d in found.get("dnsNames", [])
                if d.get("connectionType") == "PRIVATE_SERVICES_ACCESS"
            ),
            str(found.get("dnsName", "")).rstrip("."),
        )
        if not address or not tls_name:
            raise RestoreError(f"the clone {copy!r} has no private address or dns name")
        ip = found.get("settings", {}).get("ipConfiguration", {})
        facts = {
            "no public ip": ip.get("ipv4Enabled") is False,
            "on the source's private network": bool(ip.get("privateNetwork"))
            and ip.get("privateNetwork") == self._source_network,
            "no deletion protection": found.get("settings", {}).get("deletionProtectionEnabled") is not True,
        }
        failed = [n for n, ok in facts.items() if not ok]
        detail = ", ".join(facts) if not failed else "expected but not found: " + ", ".join(failed)
        return CopyEndpoint(
            name=copy,
            address=str(address),  # the bastion forwards to the private address: no DNS record for the clone
            tls_name=tls_name,
            port=5432,
            placement=Check("placement", not failed, detail),
            ca_pem=str((found.get("serverCaCert") or {}).get("cert", "")),
        )

    def delete(self, copy: str) -> str:
        try:
            self._call("DELETE", f"instances/{copy}")
        except _ApiError as exc:
            if exc.status == 404:
                return "not created"
            raise RestoreError(
                f"could not delete the drill clone {copy!r}: {exc}; delete it by hand "
                f"(gcloud sql instances delete {copy} --project {self.instance.project})"
            ) from None
        return "deleting"


class _ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"http {status}: {message}")
