"""The GCP program under the project mocks: every security, backup and quiet-preview property,
in preview and non-preview mode, for dev and production, and the bad inputs that declare nothing."""

from __future__ import annotations

import json
import re

import pytest

from infra.config import load
from infra.contract import USER_ROLES, CloudSqlInstance, IapBastion, SshBastion, StackOutputs
from infra.enums import Environment
from infra.provision.gcp.bastion import IAP_RANGE
from infra.provision.gcp.database import DATABASE_FLAGS
from infra.provision.passwords import PASSWORD_LENGTH, PASSWORD_SPECIALS
from infra.provision.recording import UNKNOWN, RecordedResource, Synthesis, is_secret
from infra.provision.synth import load_stack_config, render_text, run_synth
from tests.fixtures.stack import GCP_BASE, full, refused, synth

SQL = "gcp:sql/databaseInstance:DatabaseInstance"
VM = "gcp:compute/instance:Instance"
FIREWALL = "gcp:compute/firewall:Firewall"
SECRET = "gcp:secretmanager/secret:Secret"
VERSION = "gcp:secretmanager/secretVersion:SecretVersion"
BOTH = pytest.mark.parametrize("preview", [False, True], ids=["up", "preview"])
OPERATORS = '["user:ana@example.com","group:dba@example.com"]'
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq0mZ9Q1bq7i8zjYb5rQx5gkY2u9d0tY0d5b0jZ3QyW ops@example"
PROJECT = GCP_BASE["gcp:project"]


@pytest.fixture(scope="module")
def dev() -> Synthesis:
    return synth(full(GCP_BASE, operators=OPERATORS))


@pytest.fixture(scope="module")
def prod() -> Synthesis:
    return synth(full(GCP_BASE, environment="production", operators=OPERATORS), stack="prod")


# -- the Cloud SQL instance -----------------------------------------------------------------------


@BOTH
def test_instance_is_private_tls_only_postgres16_with_explicit_edition(preview: bool) -> None:
    result = synth(GCP_BASE, preview=preview)
    sql = result.one(SQL)
    assert sql.input("databaseVersion") == "POSTGRES_16"
    if not preview:
        assert re.fullmatch(r"private-postgres-dev-pg-[0-9a-f]{8}", sql.input("name"))  # reserved a week: suffixed
    assert sql.input("region") == "europe-west1"
    assert sql.input("settings.edition") == "ENTERPRISE"  # PG16 would default to ENTERPRISE_PLUS
    assert sql.input("settings.tier") == "db-custom-1-3840"
    ip = sql.input("settings.ipConfiguration")
    assert ip["ipv4Enabled"] is False
    assert ip["sslMode"] == "ENCRYPTED_ONLY"
    assert "requireSsl" not in ip  # removed from the API, and rejected together with sslMode
    assert ip.get("authorizedNetworks") in (None, [])
    assert ip["serverCaMode"] == "GOOGLE_MANAGED_CAS_CA"  # the server certificate names the DNS name
    if not preview:
        network = result.one("gcp:compute/network:Network")
        assert ip["privateNetwork"] == f"projects/{PROJECT}/global/networks/{network.input('name')}"
    # the private IP comes from the peering range: the instance waits for the connection
    connection = result.one("gcp:servicenetworking/connection:Connection")
    assert connection.urn in sql.dependencies


@BOTH
def test_backups_pitr_and_log_retention(preview: bool) -> None:
    backup = synth(GCP_BASE, preview=preview).one(SQL).input("settings.backupConfiguration")
    assert backup["enabled"] is True
    assert backup["pointInTimeRecoveryEnabled"] is True
    assert backup["backupRetentionSettings"] == {"retainedBackups": 30, "retentionUnit": "COUNT"}
    assert backup["transactionLogRetentionDays"] == 7  # ENTERPRISE keeps at most 7 days of WAL
    assert backup["startTime"] == "03:00"

    long = synth(full(GCP_BASE, backupRetentionDays="365"), preview=preview).one(SQL)
    assert long.input("settings.backupConfiguration.backupRetentionSettings.retainedBackups") == 365
    short = synth(full(GCP_BASE, backupRetentionDays="3"), preview=preview).one(SQL)
    assert short.input("settings.backupConfiguration.transactionLogRetentionDays") == 2  # fewer than the backups


def test_enterprise_plus_keeps_more_transaction_logs() -> None:
    sql = synth(full(GCP_BASE, dbEdition="ENTERPRISE_PLUS", dbTier="db-perf-optimized-N-2")).one(SQL)
    assert sql.input("settings.edition") == "ENTERPRISE_PLUS"
    assert sql.input("settings.tier") == "db-perf-optimized-N-2"
    assert sql.input("settings.backupConfiguration.transactionLogRetentionDays") == 29


@BOTH
def test_disk_autoresizes_to_the_limit_and_the_size_never_diffs(preview: bool) -> None:
    sql = synth(full(GCP_BASE, dbStorageGb="50", dbMaxStorageGb="500"), preview=preview).one(SQL)
    assert sql.input("settings.diskAutoresize") is True
    assert sql.input("settings.diskAutoresizeLimit") == 500
    assert sql.input("settings.diskSize") == 50
    assert sql.input("settings.diskType") == "PD_SSD"
    assert sql.ignore_changes == ("settings.diskSize",)


def test_flags_are_the_cis_set_sorted_by_name(dev: Synthesis) -> None:
    flags = dev.one(SQL).input("settings.databaseFlags")
    names = [flag["name"] for flag in flags]
    assert names == sorted(names)  # any other order shows as a change on every preview
    assert {flag["name"]: flag["value"] for flag in flags} == {
        "cloudsql.enable_pgaudit": "on",
        "log_connections": "on",
        "log_disconnections": "on",
        "log_min_duration_statement": "-1",
        "log_min_error_statement": "error",
        "log_min_messages": "warning",
        "log_statement": "ddl",
        "pgaudit.log": "ddl,role",
    }
    assert len(flags) == len(DATABASE_FLAGS)


def test_maintenance_window_insights_and_labels(dev: Synthesis) -> None:
    settings = dev.one(SQL).input("settings")
    assert settings["maintenanceWindow"] == {"day": 7, "hour": 4, "updateTrack": "stable"}
    assert settings["insightsConfig"]["queryInsightsEnabled"] is True
    assert settings["insightsConfig"]["recordClientAddress"] is False
    assert settings["userLabels"]["managed-by"] == "pulumi"


@BOTH
def test_dev_vs_production_protection_ha_and_final_backup(preview: bool) -> None:
    dev_sql = synth(GCP_BASE, preview=preview).one(SQL)
    prod_sql = synth(full(GCP_BASE, environment="production"), preview=preview, stack="prod").one(SQL)

    def protection(sql: RecordedResource) -> tuple[object, ...]:
        return (
            sql.input("deletionProtection"),
            sql.input("settings.deletionProtectionEnabled"),
            sql.input("settings.availabilityType"),
            sql.input("settings.finalBackupConfig.enabled"),
            sql.input("settings.retainBackupsOnDelete"),
            sql.protect,
        )

    assert protection(dev_sql) == (False, False, "ZONAL", False, False, False)
    assert protection(prod_sql) == (True, True, "REGIONAL", True, True, True)
    assert prod_sql.input("settings.finalBackupConfig.retentionDays") == 30


def test_config_overrides_protection_and_ha_in_dev() -> None:
    sql = synth(full(GCP_BASE, deletionProtection="true", highAvailability="true")).one(SQL)
    assert sql.input("deletionProtection") is True
    assert sql.input("settings.deletionProtectionEnabled") is True
    assert sql.input("settings.availabilityType") == "REGIONAL"
    assert sql.protect is False  # protect=True is for production only


# -- network --------------------------------------------------------------------------------------


@BOTH
def test_network_is_custom_mode_with_private_service_access(preview: bool) -> None:
    result = synth(full(GCP_BASE, pscRangePrefix="20"), preview=preview)
    assert result.one("gcp:compute/network:Network").input("autoCreateSubnetworks") is False
    subnet = result.one("gcp:compute/subnetwork:Subnetwork")
    assert subnet.input("privateIpGoogleAccess") is True
    assert subnet.input("ipCidrRange") == "10.40.0.0/24"
    assert subnet.input("region") == "europe-west1"
    assert subnet.input("logConfig") == {
        "aggregationInterval": "INTERVAL_5_SEC",
        "flowSampling": 1,
        "metadata": "INCLUDE_ALL_METADATA",
    }
    peering = result.one("gcp:compute/globalAddress:GlobalAddress")
    assert peering.input("purpose") == "VPC_PEERING"
    assert peering.input("addressType") == "INTERNAL"
    assert peering.input("prefixLength") == 20
    connection = result.one("gcp:servicenetworking/connection:Connection")
    assert connection.input("service") == "servicenetworking.googleapis.com"
    assert connection.input("deletionPolicy") == "REMOVE_PEERING"
    assert connection.input("reservedPeeringRanges") == [peering.input("name")]


def test_google_apis_resolve_to_the_private_vip_inside_the_vpc(dev: Synthesis) -> None:
    zone = dev.named("private-postgres-dev-net-googleapis")
    assert zone.input("visibility") == "private"
    assert zone.input("dnsName") == "googleapis.com."
    records = {r.input("name"): r for r in dev.of_type("gcp:dns/recordSet:RecordSet")}
    assert records["private.googleapis.com."].input("rrdatas") == [
        "199.36.153.8",
        "199.36.153.9",
        "199.36.153.10",
        "199.36.153.11",
    ]
    assert records["*.googleapis.com."].input("rrdatas") == ["private.googleapis.com."]


# -- database, users and secrets ------------------------------------------------------------------


def test_database_and_admin_user_with_generated_password(dev: Synthesis) -> None:
    database = dev.one("gcp:sql/database:Database")
    assert database.input("name") == "app"
    assert database.input("instance") == dev.one(SQL).input("name")
    assert database.input("deletionPolicy") == "ABANDON"
    user = dev.one("gcp:sql/user:User")
    assert user.input("name") == "pgadmin"
    assert user.input("type") == "BUILT_IN"
    assert is_secret(user.inputs["password"])
    versions = [v for v in dev.of_type(VERSION) if v.name == "private-postgres-dev-db-admin"]
    document = json.loads(versions[0].input("secretData"))
    assert document["username"] == "pgadmin"
    assert document["password"] == user.input("password")  # the secret holds the password the user has
    assert len(document["password"]) == PASSWORD_LENGTH


def test_every_password_follows_the_shared_policy(dev: Synthesis) -> None:
    passwords = dev.of_type("random:index/randomPassword:RandomPassword")
    assert sorted(p.input("keepers")["role"] for p in passwords) == sorted([*USER_ROLES, "pgadmin"])
    for password in passwords:
        assert password.input("overrideSpecial") == PASSWORD_SPECIALS
        assert password.input("length") == PASSWORD_LENGTH
        assert password.input("special") is True


@BOTH
def test_secrets_use_automatic_replication_and_hold_secret_documents(preview: bool) -> None:
    result = synth(full(GCP_BASE, operators=OPERATORS), preview=preview)
    secrets = result.of_type(SECRET)
    assert sorted(s.input("secretId") for s in secrets) == [
        f"private-postgres-dev-postgres-{role}" for role in ("admin", "app", "migrator", "readonly")
    ]
    for secret in secrets:
        assert secret.input("replication") == {"auto": {}}
        assert secret.input("deletionProtection") is False
    versions = result.of_type(VERSION)
    assert len(versions) == 4
    for version in versions:
        assert is_secret(version.inputs["secretData"])
        assert "secretData" in version.additional_secret_outputs
        if not preview:
            document = json.loads(version.input("secretData"))
            assert set(document) == {"username", "password", "engine", "host", "port", "dbname"}
            assert document["host"].endswith(".europe-west1.sql.goog")
            assert document["port"] == 5432


def test_operators_may_read_the_secrets_and_nothing_else(dev: Synthesis) -> None:
    readers = dev.of_type("gcp:secretmanager/secretIamMember:SecretIamMember")
    assert len(readers) == 4 * 2
    assert {r.input("role") for r in readers} == {"roles/secretmanager.secretAccessor"}
    assert {r.input("member") for r in readers} == {"user:ana@example.com", "group:dba@example.com"}
    assert {r.input("secretId") for r in readers} == {s.input("secretId") for s in dev.of_type(SECRET)}


def test_production_secrets_are_deletion_protected(prod: Synthesis) -> None:
    assert {s.input("deletionProtection") for s in prod.of_type(SECRET)} == {True}


# -- bastion --------------------------------------------------------------------------------------


@BOTH
def test_bastion_is_a_shielded_private_os_login_vm(preview: bool) -> None:
    result = synth(full(GCP_BASE, operators=OPERATORS), preview=preview)
    vm = result.one(VM)
    assert vm.input("machineType") == "e2-micro"
    assert vm.input("zone") == "europe-west1-b"
    assert vm.input("bootDisk.initializeParams.image") == "debian-cloud/debian-12"
    assert vm.ignore_changes == ("bootDisk.initializeParams.image",)
    assert vm.input("networkInterfaces.0.accessConfigs") in (None, [])  # no external IP (CIS GCP 4.9)
    assert vm.input("shieldedInstanceConfig") == {
        "enableIntegrityMonitoring": True,
        "enableSecureBoot": True,
        "enableVtpm": True,
    }
    assert vm.input("metadata") == {
        "block-project-ssh-keys": "TRUE",
        "enable-guest-attributes": "TRUE",
        "enable-oslogin": "TRUE",
        "serial-port-enable": "FALSE",
    }
    assert vm.input("canIpForward") is False
    if not preview:
        account = result.one("gcp:serviceaccount/account:Account")
        email = f"{account.input('accountId')}@{PROJECT}.iam.gserviceaccount.com"
        assert vm.input("serviceAccount.email") == email  # not the default compute service account
        assert not email.endswith("-compute@developer.gserviceaccount.com")


def test_bastion_service_account_writes_logs_and_metrics_only(dev: Synthesis) -> None:
    account = dev.one("gcp:serviceaccount/account:Account")
    assert 6 <= len(account.input("accountId")) <= 30
    grants = [g for g in dev.of_type("gcp:projects/iAMMember:IAMMember") if g.input("member").startswith("service")]
    assert sorted(g.input("role") for g in grants) == ["roles/logging.logWriter", "roles/monitoring.metricWriter"]
    email = dev.one(VM).input("serviceAccount.email")
    assert {g.input("member") for g in grants} == {f"serviceAccount:{email}"}
    assert sorted(dev.one(VM).input("serviceAccount.scopes")) == [
        "https://www.googleapis.com/auth/logging.write",
        "https://www.googleapis.com/auth/monitoring.write",
    ]


@BOTH
def test_firewall_ssh_only_from_iap_to_the_bastion_and_egress_only_to_the_database(preview: bool) -> None:
    result = synth(GCP_BASE, preview=preview)
    rules = {r.input("name"): r for r in result.of_type(FIREWALL)}
    ingress = [r for r in rules.values() if r.input("direction") == "INGRESS"]
    assert len(ingress) == 1
    ssh = ingress[0]
    assert ssh.input("sourceRanges") == [IAP_RANGE] == ["35.235.240.0/20"]
    assert ssh.input("allows") == [{"protocol": "tcp", "ports": ["22"]}]
    to_db = rules["private-postgres-dev-bastion-db"]
    assert to_db.input("allows") == [{"protocol": "tcp", "ports": ["5432"]}]
    deny = rules["private-postgres-dev-bastion-deny-egress"]
    assert deny.input("denies") == [{"protocol": "all"}]
    assert deny.input("priority") > to_db.input("priority")
    if not preview:
        assert to_db.input("destinationRanges") == ["10.91.0.0/16"]  # the private service access range
        email = result.one(VM).input("serviceAccount.email")
        for rule in rules.values():
            assert rule.input("targetServiceAccounts") == [email]  # never the whole network
            assert "targetTags" not in rule.inputs


def test_operators_get_tunnel_and_os_login_on_the_bastion_only(dev: Synthesis) -> None:
    tunnel = dev.of_type("gcp:iap/tunnelInstanceIAMMember:TunnelInstanceIAMMember")
    login = [m for m in dev.of_type("gcp:compute/instanceIAMMember:InstanceIAMMember") if "oslogin" in m.name]
    act_as = dev.of_type("gcp:serviceaccount/iAMMember:IAMMember")
    members = {"user:ana@example.com", "group:dba@example.com"}
    assert {t.input("member") for t in tunnel} == {m.input("member") for m in login} == members
    assert {t.input("role") for t in tunnel} == {"roles/iap.tunnelResourceAccessor"}
    assert {m.input("role") for m in login} == {"roles/compute.osLogin"}
    assert {a.input("role") for a in act_as} == {"roles/iam.serviceAccountUser"}
    assert {t.input("instance") for t in tunnel} == {"private-postgres-dev-bastion"}
    assert {m.input("instanceName") for m in login} == {"private-postgres-dev-bastion"}
    assert {t.input("zone") for t in tunnel} == {"europe-west1-b"}
    # the one project-wide grant of an operator is the custom role that only reads the project
    project_roles = {
        g.input("role") for g in dev.of_type("gcp:projects/iAMMember:IAMMember") if g.input("member") in members
    }
    assert project_roles == {"projects/acme-data-123/roles/private_postgres_dev_operator"}


def test_operator_resource_names_do_not_depend_on_list_order() -> None:
    forward = synth(full(GCP_BASE, operators=OPERATORS))
    backward = synth(full(GCP_BASE, operators='["group:dba@example.com","user:ana@example.com"]'))
    assert {r.name for r in forward.resources} == {r.name for r in backward.resources}


def test_no_operators_no_operator_grants() -> None:
    result = synth(GCP_BASE)
    assert result.of_type("gcp:iap/tunnelInstanceIAMMember:TunnelInstanceIAMMember") == []
    assert result.of_type("gcp:secretmanager/secretIamMember:SecretIamMember") == []


def test_ssh_mode_has_a_static_address_and_opens_22_to_the_configured_cidrs_only() -> None:
    result = synth(full(GCP_BASE, bastionMode="ssh", sshAllowedCidrs='["203.0.113.0/28"]', sshPublicKey=SSH_KEY))
    vm = result.one(VM)
    address = result.one("gcp:compute/address:Address")
    assert vm.input("networkInterfaces.0.accessConfigs.0.natIp") == "203.0.113.20"
    assert vm.input("metadata.enable-oslogin") == "FALSE"
    assert vm.input("metadata.ssh-keys") == f"bastion:{SSH_KEY}"
    assert vm.input("metadata.block-project-ssh-keys") == "TRUE"
    ssh = [r for r in result.of_type(FIREWALL) if r.input("direction") == "INGRESS"]
    assert [r.input("sourceRanges") for r in ssh] == [["203.0.113.0/28"]]
    outputs = StackOutputs.parse(result.outputs)
    assert isinstance(outputs.bastion, SshBastion)
    assert outputs.bastion.host == "203.0.113.20"
    assert outputs.bastion.user == "bastion"
    assert address.input("addressType") == "EXTERNAL"


# -- outputs --------------------------------------------------------------------------------------


def test_outputs_satisfy_the_contract(dev: Synthesis) -> None:
    outputs = StackOutputs.parse(dev.outputs)
    assert outputs.environment is Environment.DEV
    assert outputs.db_port == 5432
    assert outputs.db_admin_user == "pgadmin"
    assert outputs.db_admin_secret == f"projects/{PROJECT}/secrets/private-postgres-dev-postgres-admin"
    assert dict(outputs.db_user_secrets) == {
        role: f"projects/{PROJECT}/secrets/private-postgres-dev-postgres-{role}" for role in USER_ROLES
    }
    assert isinstance(outputs.bastion, IapBastion)
    assert (outputs.bastion.target, outputs.bastion.zone, outputs.bastion.project) == (
        "private-postgres-dev-bastion",
        "europe-west1-b",
        PROJECT,
    )
    # restore-drill clones this instance (the clone inherits its private network)
    instance = dev.one("gcp:sql/databaseInstance:DatabaseInstance")
    assert outputs.db_instance == CloudSqlInstance(instance.input("name"), PROJECT, "europe-west1")
    assert "Mock" not in json.dumps(dev.outputs)  # every mock password result starts with "Mock"


def test_db_host_is_the_certificate_name_and_resolves_in_the_vpc(dev: Synthesis) -> None:
    host = dev.outputs["db_host"]
    assert host.endswith(".europe-west1.sql.goog")
    assert not host.endswith(".")  # the name in the certificate has no trailing dot
    zone = dev.named("private-postgres-dev-db-dns")
    assert zone.input("visibility") == "private"
    assert zone.input("dnsName") == f"{host}."
    record = dev.named("private-postgres-dev-db-dns-a")
    assert record.input("name") == f"{host}."
    assert record.input("rrdatas") == ["10.91.0.3"]  # the instance's private address


def test_db_ca_is_the_pem_bundle_of_every_server_ca(dev: Synthesis) -> None:
    ca = dev.outputs["db_ca"]
    assert "db_ca" not in dev.secret_outputs  # CA certificates are public
    assert ca.count("-----BEGIN CERTIFICATE-----") == 2  # the shared CA's root and regional CA
    assert ca.endswith("-----END CERTIFICATE-----\n")


def test_preview_outputs_are_unknown_until_apply() -> None:
    result = synth(GCP_BASE, preview=True)
    assert result.outputs["db_host"] == UNKNOWN
    assert result.outputs["db_ca"] == UNKNOWN
    assert result.outputs["cloud"] == "gcp"
    assert result.outputs["bastion"]["mode"] == "iap"


def test_synth_is_deterministic_and_masks_secrets() -> None:
    first = render_text(synth(full(GCP_BASE, operators=OPERATORS)))
    second = render_text(synth(full(GCP_BASE, operators=OPERATORS)))
    assert first == second
    assert "Mock" not in first
    assert "[secret]" in first


def test_example_stack_file_is_valid_and_synthesizes_identically() -> None:
    values = load_stack_config("gcp-dev")
    cfg = load(values, stack="gcp-dev")
    assert cfg.gcp is not None
    assert cfg.gcp.operators
    assert render_text(run_synth("gcp-dev")) == render_text(run_synth("gcp-dev"))
    assert render_text(run_synth("gcp-dev", preview=True)) == render_text(run_synth("gcp-dev", preview=True))


# -- bad input: one clear line, nothing declared --------------------------------------------------

BAD = [
    pytest.param(
        full(GCP_BASE, dbEdition="ENTERPRISE_PLUS"), "dbEdition", "ENTERPRISE with custom tier", id="plus-custom"
    ),
    pytest.param(
        full(GCP_BASE, dbEdition="ENTERPRISE_PLUS", dbTier="db-f1-micro"),
        "dbEdition",
        "db-perf-optimized",
        id="plus-shared-core",
    ),
    pytest.param(
        full(GCP_BASE, dbTier="db-perf-optimized-N-2"), "dbEdition", "ENTERPRISE_PLUS with tier", id="perf-enterprise"
    ),
    pytest.param(full(GCP_BASE, backupRetentionDays="1"), "backupRetentionDays", "from 2 to 365", id="retention-1"),
    pytest.param(full(GCP_BASE, backupRetentionDays="366"), "backupRetentionDays", "from 2 to 365", id="retention-366"),
    pytest.param(full(GCP_BASE, bastionMode="ssm"), "bastionMode", "iap | ssh", id="mode-ssm"),
    pytest.param(full(GCP_BASE, bastionMode="vpn"), "bastionMode", "iap | ssh", id="mode-unknown"),
    pytest.param(full(GCP_BASE, operators='["ana@example.com"]'), "operators", "IAM members", id="operator-no-kind"),
    pytest.param(full(GCP_BASE, operators='["user:not an email"]'), "operators", "IAM members", id="operator-space"),
    pytest.param(full(GCP_BASE, dbPort="6432"), "dbPort", "5432", id="port"),
]


@pytest.mark.parametrize("preview", [False, True], ids=["up", "preview"])
@pytest.mark.parametrize(("config", "key", "allowed"), BAD)
def test_bad_input_is_one_clear_line_and_declares_nothing(
    config: dict[str, str], key: str, allowed: str, preview: bool
) -> None:
    error, monitor = refused(config, preview=preview)
    assert error.key == key
    message = str(error)
    assert "\n" not in message
    assert f"config {key}=" in message
    assert allowed in message
    assert "fix: pulumi config" in message
    assert monitor.recorded == []


def test_service_account_ids_are_valid_and_distinct_for_long_stack_names() -> None:
    ids = {
        stack: synth(GCP_BASE, stack=stack).one("gcp:serviceaccount/account:Account").input("accountId")
        for stack in ("dev", "gcp-development-eu", "gcp-development-us")
    }
    assert ids["dev"] == "private-postgres-dev-bastion"
    assert ids["gcp-development-eu"] != ids["gcp-development-us"]
    for account in ids.values():
        assert 6 <= len(account) <= 30
        assert account[0].isalpha()
        assert not account.endswith("-")


def test_resource_names_fit_gcp_limits_for_the_longest_prefix() -> None:
    config = {**GCP_BASE, "gcp:region": "northamerica-northeast1"}  # one of the longest region names
    result = synth(config, stack="abcdefghijklmnopqrstuvwxyz")  # the prefix is cut at 40 characters
    named = [
        r
        for r in result.resources
        if r.type.startswith(("gcp:compute/", "gcp:dns/managedZone", "gcp:sql/databaseInstance")) and r.input("name")
    ]
    assert len(named) >= 8
    for resource in named:
        assert re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", resource.input("name")), resource.input("name")
    for secret in result.of_type(SECRET):
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,255}", secret.input("secretId"))
