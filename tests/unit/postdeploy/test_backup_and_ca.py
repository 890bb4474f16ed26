"""Pre-migration snapshots (RDS through botocore's Stubber, Cloud SQL argv) and the verify-full CA files."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from infra.errors import ContractError, InfraError
from infra.local.pg import make_tls
from infra.postdeploy.backup import AwsSnapshotter, GcpBackup, snapshotter_for
from infra.postdeploy.ca import RDS_CA_URL, ca_file_for
from infra.postdeploy.outputs import load_outputs_file, parse_document

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "outputs"
AWS = load_outputs_file(FIXTURES / "aws-dev.json")
GCP = load_outputs_file(FIXTURES / "gcp-dev.json")
NOW = dt.datetime(2026, 11, 23, 20, 15, 0, tzinfo=dt.UTC)


@pytest.fixture
def rds() -> Any:
    return boto3.client("rds", region_name="eu-west-1", aws_access_key_id="t", aws_secret_access_key="t")


def test_rds_snapshot_is_created_and_waited_for(rds: Any) -> None:
    snap = "pre-migrate-prod-20261123-201500"
    with Stubber(rds) as stub:
        stub.add_response(
            "create_db_snapshot",
            {"DBSnapshot": {"DBSnapshotIdentifier": snap, "Status": "creating"}},
            {
                "DBInstanceIdentifier": "private-postgres-dev",
                "DBSnapshotIdentifier": snap,
                "Tags": [{"Key": "purpose", "Value": "pre-migration"}],
            },
        )
        # the waiter polls describe_db_snapshots until the snapshot is available
        stub.add_response(
            "describe_db_snapshots",
            {"DBSnapshots": [{"DBSnapshotIdentifier": snap, "Status": "creating"}]},
            {"DBSnapshotIdentifier": snap},
        )
        stub.add_response(
            "describe_db_snapshots",
            {"DBSnapshots": [{"DBSnapshotIdentifier": snap, "Status": "available"}]},
            {"DBSnapshotIdentifier": snap},
        )
        shot = AwsSnapshotter("private-postgres-dev", client=rds, wait_delay=0)
        assert shot.create("pre-migrate-prod", now=NOW) == snap
        stub.assert_no_pending_responses()


def test_rds_snapshot_failure_says_how_to_proceed(rds: Any) -> None:
    with Stubber(rds) as stub:
        stub.add_client_error("create_db_snapshot", service_error_code="SnapshotQuotaExceeded")
        with pytest.raises(InfraError, match=r"SnapshotQuotaExceeded; fix it or pass --skip-snapshot"):
            AwsSnapshotter("db1", client=rds).create("pre", now=NOW)


def test_snapshotter_targets_the_instance_of_the_endpoint() -> None:
    aws = snapshotter_for(AWS)
    assert isinstance(aws, AwsSnapshotter)
    assert aws.instance_id == "private-postgres-dev"


def test_gcp_backup_finds_the_instance_by_its_dns_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listing = [
        {"name": "other-pg", "dnsNames": [{"name": "aaa.europe-west1.sql.goog."}]},
        {"name": "private-postgres-gcp-dev-pg", "dnsNames": [{"name": f"{GCP.db_host}."}]},
    ]
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls"
    gcloud = bindir / "gcloud"
    gcloud.write_text(
        f"#!{sys.executable}\nimport sys\nopen({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        f"print({json.dumps(json.dumps(listing))} if sys.argv[1:3] == ['sql', 'instances'] else '')\n"
    )
    gcloud.chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    gcp = snapshotter_for(GCP)
    assert isinstance(gcp, GcpBackup)
    assert gcp.create("pre-migrate-x", now=NOW) == "pre-migrate-x-20261123-201500"
    calls = log.read_text().splitlines()
    assert calls[0] == "sql instances list --project=acme-data-123 --format=json"
    assert calls[1] == (
        "sql backups create --instance=private-postgres-gcp-dev-pg --project=acme-data-123 "
        "--description=pre-migrate-x-20261123-201500"
    )


def test_gcp_backup_argv() -> None:
    gcp = GcpBackup("acme-data-123", instance="private-postgres-gcp-dev")
    assert gcp.argv("pre-migrate-x") == [
        "gcloud",
        "sql",
        "backups",
        "create",
        "--instance=private-postgres-gcp-dev",
        "--project=acme-data-123",
        "--description=pre-migrate-x",
    ]


def test_gcp_ca_comes_from_the_db_ca_output(tmp_path: Path) -> None:
    path = ca_file_for(GCP, cache_dir=tmp_path)
    assert path.read_text() == GCP.db_ca
    assert ca_file_for(GCP, cache_dir=tmp_path) == path  # stable name: no new file per run
    assert len(list(tmp_path.iterdir())) == 1


def test_gcp_db_ca_that_is_not_pem_is_refused(tmp_path: Path) -> None:
    doc = json.loads((FIXTURES / "gcp-dev.json").read_text()) | {"db_ca": "not a certificate"}
    with pytest.raises(ContractError, match="'db_ca' is not a PEM certificate bundle"):
        ca_file_for(parse_document(json.dumps(doc), "t"), cache_dir=tmp_path)


def test_rds_bundle_is_fetched_once_and_cached(tmp_path: Path) -> None:
    pem = make_tls(tmp_path / "tls", ["x"]).ca_cert.read_bytes()
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return pem

    first = ca_file_for(AWS, cache_dir=tmp_path / "cache", fetch=fetch)
    second = ca_file_for(AWS, cache_dir=tmp_path / "cache", fetch=fetch)
    assert first == second
    assert first.read_bytes() == pem
    assert fetched == [RDS_CA_URL.format(region="eu-west-1")]


def test_rds_bundle_that_is_not_pem_is_not_cached(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="is not a PEM certificate bundle"):
        ca_file_for(AWS, cache_dir=tmp_path, fetch=lambda url: b"<html>captive portal</html>")
    assert list(tmp_path.iterdir()) == []


def test_configured_ca_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="does not exist; fix --ca-file or RDS_CA_BUNDLE"):
        ca_file_for(AWS, configured=tmp_path / "missing.pem")
