"""GCP stacks that survive the real cloud (issue 12, items 1-9 and the GCP half of 17), on the
synthesized graphs: dev and production, up and preview."""

from __future__ import annotations

import inspect
import json
import re
from importlib import metadata
from pathlib import Path
from typing import Any

import pulumi
import pytest

from infra.enums import Edition
from infra.errors import ProvisionError
from infra.provision.gcp.bastion import HOST_KEY_PERMISSIONS, PROJECT_PERMISSIONS
from infra.provision.gcp.database import log_retention_days
from infra.provision.mocks import ProjectMocks
from infra.provision.program import build
from infra.provision.recording import UNKNOWN, RecordingMonitor, Synthesis, synthesize
from infra.provision.sshd import DROP_IN
from tests.fixtures.stack import ENVIRONMENTS_AND_MODES, GCP_BASE, OPERATORS, full, graph, synth

SQL = "gcp:sql/databaseInstance:DatabaseInstance"
VM = "gcp:compute/instance:Instance"
FIREWALL = "gcp:compute/firewall:Firewall"
ROLE = "gcp:projects/iAMCustomRole:IAMCustomRole"
PROJECT = GCP_BASE["gcp:project"]
MEMBERS = {"user:ana@example.com", "group:dba@example.com"}
EACH = pytest.mark.parametrize(("environment", "preview"), ENVIRONMENTS_AND_MODES)


def _gcp(environment: str, preview: bool, mode: str = "default") -> Synthesis:
    return graph("gcp", environment, preview, mode)


# -- 1: gcloud can verify the bastion's host key on the first connection ---------------------------------


@EACH
@pytest.mark.parametrize("mode", ["default", "ssh"])
def test_01_the_bastion_publishes_its_host_keys_as_guest_attributes(environment: str, preview: bool, mode: str) -> None:
    metadata = _gcp(environment, preview, mode).one(VM).input("metadata")
    assert metadata["enable-guest-attributes"] == "TRUE"  # else --strict-host-key-checking=yes fails at first


# -- 2: what `gcloud compute ssh --tunnel-through-iap` needs ----------------------------------------------


@EACH
def test_02_operators_can_read_the_project_and_the_bastions_host_keys_and_nothing_more(
    environment: str, preview: bool
) -> None:
    result = _gcp(environment, preview)
    roles = {r.input("roleId"): r for r in result.of_type(ROLE)}
    prefix = f"private_postgres_{environment}"
    assert roles[f"{prefix}_operator"].input("permissions") == list(PROJECT_PERMISSIONS) == ["compute.projects.get"]
    assert roles[f"{prefix}_host_keys"].input("permissions") == list(HOST_KEY_PERMISSIONS)
    project_grants = [g for g in result.of_type("gcp:projects/iAMMember:IAMMember") if g.input("member") in MEMBERS]
    assert {g.input("member") for g in project_grants} == MEMBERS
    instance_grants = result.of_type("gcp:compute/instanceIAMMember:InstanceIAMMember")
    assert len(instance_grants) == 2 * len(MEMBERS)  # OS Login and the host keys, on the bastion only
    if not preview:
        assert {g.input("role") for g in project_grants} == {f"projects/{PROJECT}/roles/{prefix}_operator"}
        assert {g.input("role") for g in instance_grants} == {
            "roles/compute.osLogin",
            f"projects/{PROJECT}/roles/{prefix}_host_keys",
        }
    assert result.of_type("gcp:organizations/iAMMember:IAMMember") == []  # only when an organization is named


def test_02_operators_from_outside_the_organization_get_the_external_user_role_there() -> None:
    result = synth(full(GCP_BASE, operators=OPERATORS, operatorsOrganization="123456789012"))
    grants = result.of_type("gcp:organizations/iAMMember:IAMMember")
    assert {(g.input("orgId"), g.input("role")) for g in grants} == {
        ("123456789012", "roles/compute.osLoginExternalUser")
    }
    assert {g.input("member") for g in grants} == MEMBERS


# -- 3: transaction logs are kept fewer days than the backups ---------------------------------------------


@EACH
def test_03_the_graph_keeps_logs_fewer_days_than_backups(environment: str, preview: bool) -> None:
    backup = _gcp(environment, preview).one(SQL).input("settings.backupConfiguration")
    assert backup["transactionLogRetentionDays"] < backup["backupRetentionSettings"]["retainedBackups"]


@pytest.mark.parametrize("edition", list(Edition))
def test_03_for_every_allowed_retention_the_logs_stay_below_the_backups_and_within_the_edition(
    edition: Edition,
) -> None:
    limit = {Edition.ENTERPRISE: 7, Edition.ENTERPRISE_PLUS: 35}[edition]
    for days in range(2, 366):
        logs = log_retention_days(days, edition)
        assert 1 <= logs < days, days  # the API refuses logs >= retained backups
        assert logs == min(days - 1, limit)


def test_03_at_seven_days_the_instance_keeps_six_days_of_logs() -> None:
    sql = synth(full(GCP_BASE, backupRetentionDays="7")).one(SQL)
    backup = sql.input("settings.backupConfiguration")
    assert (backup["backupRetentionSettings"]["retainedBackups"], backup["transactionLogRetentionDays"]) == (7, 6)


# -- 4: destroy removes the peering -------------------------------------------------------------------------


@EACH
def test_04_the_connection_removes_the_vpc_peering_when_it_is_destroyed(environment: str, preview: bool) -> None:
    connection = _gcp(environment, preview).one("gcp:servicenetworking/connection:Connection")
    assert connection.input("deletionPolicy") == "REMOVE_PEERING"  # ABANDON left it, and the network with it


def test_04_the_pinned_provider_sdk_documents_remove_peering() -> None:
    """REMOVE_PEERING is documented from pulumi-gcp 10.2.0 on (servicenetworking/connection.py); 9.36.1
    was the floor before (earlier versions silently ignored changes to nested Cloud SQL ``settings``)."""
    requirements = (Path(__file__).resolve().parents[3] / "requirements.txt").read_text().splitlines()
    pins = [line.split("==", 1)[1].strip() for line in requirements if line.startswith("pulumi-gcp==")]
    assert len(pins) == 1
    assert tuple(int(part) for part in pins[0].split(".")) >= (10, 2, 0)
    assert metadata.version("pulumi-gcp") == pins[0]  # the tests ran against the pinned provider SDK
    import pulumi_gcp

    assert "REMOVE_PEERING" in inspect.getsource(pulumi_gcp.servicenetworking.ConnectionArgs)


# -- 5: the instance name is unique per physical instance ----------------------------------------------------


@EACH
def test_05_the_instance_name_carries_a_suffix_redrawn_when_the_instance_is_replaced(
    environment: str, preview: bool
) -> None:
    result = _gcp(environment, preview)
    sql = result.one(SQL)
    [suffix] = [r for r in result.of_type("random:index/randomId:RandomId") if r.urn in sql.dependencies]
    assert suffix.input("keepers") == {"project": PROJECT, "region": "europe-west1"}  # the inputs that replace it
    if preview:
        assert sql.input("name") == UNKNOWN
    else:
        assert re.fullmatch(rf"private-postgres-{environment}-pg-[0-9a-f]{{8}}", sql.input("name"))


def test_05_moving_region_draws_a_new_name() -> None:
    here = synth(GCP_BASE).one(SQL).input("name")
    there = synth({**GCP_BASE, "gcp:region": "europe-west4"}).one(SQL).input("name")
    assert here != there
    assert synth(full(GCP_BASE, dbTier="db-custom-2-7680")).one(SQL).input("name") == here  # in place


# -- 6: pgAudit records something ------------------------------------------------------------------------------


@EACH
def test_06_pgaudit_is_loaded_and_told_what_to_record(environment: str, preview: bool) -> None:
    flags = {f["name"]: f["value"] for f in _gcp(environment, preview).one(SQL).input("settings.databaseFlags")}
    assert flags["cloudsql.enable_pgaudit"] == "on"
    assert flags["pgaudit.log"] == "ddl,role"  # the post-deploy bootstrap creates the extension


# -- 7: every flow is logged --------------------------------------------------------------------------------------


@EACH
def test_07_subnet_flow_logs_sample_every_flow(environment: str, preview: bool) -> None:
    log = _gcp(environment, preview).one("gcp:compute/subnetwork:Subnetwork").input("logConfig")
    assert log == {"aggregationInterval": "INTERVAL_5_SEC", "flowSampling": 1, "metadata": "INCLUDE_ALL_METADATA"}


# -- 8: the bastion can be patched ------------------------------------------------------------------------------------


@EACH
def test_08_cloud_nat_serves_the_bastion_subnet_only_and_the_bastion_boots_after_it(
    environment: str, preview: bool
) -> None:
    result = _gcp(environment, preview)
    nat = result.one("gcp:compute/routerNat:RouterNat")
    assert nat.input("sourceSubnetworkIpRangesToNat") == "LIST_OF_SUBNETWORKS"  # not the whole VPC
    assert nat.input("natIpAllocateOption") == "AUTO_ONLY"
    assert nat.input("logConfig") == {"enable": True, "filter": "ERRORS_ONLY"}
    subnet = result.one("gcp:compute/subnetwork:Subnetwork")
    assert subnet.urn in nat.dependencies
    if not preview:
        assert [s["name"] for s in nat.input("subnetworks")] == [
            f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/regions/europe-west1/subnetworks/"
            f"private-postgres-{environment}-private"
        ]
    assert nat.urn in result.one(VM).dependencies


@EACH
@pytest.mark.parametrize("mode", ["default", "ssh"])
def test_08_the_bastion_may_reach_mirrors_over_http_and_https_only(environment: str, preview: bool, mode: str) -> None:
    result = _gcp(environment, preview, mode)
    rules = {r.input("name").rsplit("-bastion-", 1)[-1]: r for r in result.of_type(FIREWALL)}
    mirrors, deny = rules["mirrors"], rules["deny-egress"]
    assert mirrors.input("direction") == "EGRESS"
    assert mirrors.input("allows") == [{"protocol": "tcp", "ports": ["80", "443"]}]
    assert mirrors.input("priority") < deny.input("priority")
    script = result.one(VM).input("metadataStartupScript")
    if script != UNKNOWN:
        assert "unattended-upgrades" in script
        assert 'APT::Periodic::Unattended-Upgrade "1";' in script
    # ssh mode has an external address and needs no NAT
    assert len(result.of_type("gcp:compute/routerNat:RouterNat")) == (0 if mode == "ssh" else 1)


# -- 9: no DNS name, no stack ----------------------------------------------------------------------------


class _NoDnsName(ProjectMocks):
    """A Cloud SQL instance that reports no DNS name at all (e.g. the per-instance CA)."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        resource_id, state = super().new_resource(args)
        if args.typ == SQL and not self.preview:
            state.update(dnsName="", dnsNames=[])
        return resource_id, state


def test_09_an_instance_without_a_private_dns_name_fails_the_update_and_writes_no_zone_or_secret() -> None:
    monitor = RecordingMonitor(_NoDnsName(preview=False, project=PROJECT))
    with pytest.raises(ProvisionError, match="reports no private DNS name"):
        synthesize(build, GCP_BASE, monitor=monitor)
    types = {r.type for r in monitor.recorded}
    assert SQL in types  # the instance was declared; what depends on its name was not
    assert "gcp:dns/managedZone:ManagedZone" not in {r.type for r in monitor.recorded if "-db-" in r.name}
    for version in (r for r in monitor.recorded if r.type == "gcp:secretmanager/secretVersion:SecretVersion"):
        assert json.loads(version.input("secretData"))["host"]  # never an empty host


def test_09_the_preview_does_not_need_the_name() -> None:
    result = synthesize(
        build, GCP_BASE, monitor=RecordingMonitor(_NoDnsName(preview=True, project=PROJECT)), preview=True
    )
    assert result.outputs["db_host"] == UNKNOWN


# -- 17 (GCP): the ssh-mode bastion forwards to the database only ------------------------------------


@EACH
def test_17_the_ssh_mode_startup_script_makes_sshd_forward_only(environment: str, preview: bool) -> None:
    result = _gcp(environment, preview, "ssh")
    script = result.one(VM).input("metadataStartupScript")
    if preview:
        assert script == UNKNOWN  # it names the instance's DNS name, known after apply
        return
    host = result.outputs["db_host"]
    assert script.index(DROP_IN) < script.index("apt-get")
    for line in (f"PermitOpen {host}:5432", "ForceCommand /bin/false", "PermitTTY no", "X11Forwarding no"):
        assert line in script


@EACH
def test_17_iap_mode_keeps_os_login_and_writes_no_forward_only_drop_in(environment: str, preview: bool) -> None:
    script = _gcp(environment, preview).one(VM).input("metadataStartupScript")
    assert DROP_IN not in script
    assert script.startswith("#!/bin/bash\nset -euo pipefail\n")
