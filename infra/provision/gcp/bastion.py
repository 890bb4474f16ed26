"""The bastion: a tiny Shielded VM with no external address, reached through IAP TCP forwarding
and OS Login (or, in ssh mode, through OpenSSH from restricted CIDRs, forwarding only), its own
service account, its firewall rules, and the IAM that lets the operators open the tunnel.

It patches itself: its startup script keeps Debian's unattended-upgrades on, and the egress
firewall lets it reach package mirrors over HTTP(S) (through Cloud NAT in iap mode).
"""

from __future__ import annotations

import hashlib

import pulumi
import pulumi_gcp as gcp

from infra.config import BastionSettings, GcpSettings, StackMeta
from infra.enums import BastionMode
from infra.provision.gcp.network import PRIVATE_GOOGLE_APIS_CIDR
from infra.provision.gcp.secrets import member_suffix
from infra.provision.sshd import forward_only_script

__all__ = [
    "HOST_KEY_PERMISSIONS",
    "IAP_RANGE",
    "IMAGE",
    "MACHINE_TYPE",
    "PROJECT_PERMISSIONS",
    "SSH_USER",
    "Bastion",
    "startup_script",
]

IMAGE = "debian-cloud/debian-12"  # the image family: new instances get the current release
MACHINE_TYPE = "e2-micro"
IAP_RANGE = "35.235.240.0/20"  # where IAP TCP forwarding connects from
SSH_USER = "bastion"  # ssh mode: the login created from the instance's ssh-keys metadata
# Only what an agent needs to ship logs and metrics (CIS GCP 4.1: not the default service account).
SERVICE_ACCOUNT_ROLES = ("roles/logging.logWriter", "roles/monitoring.metricWriter")
SCOPES = (
    "https://www.googleapis.com/auth/logging.write",
    "https://www.googleapis.com/auth/monitoring.write",
)
# `gcloud compute ssh` reads the project (projects.get) before it connects: a permission that no
# grant on the instance can give (google-cloud-sdk command_lib/compute/ssh_utils.py, GetProject).
PROJECT_PERMISSIONS = ("compute.projects.get",)
# ... and the instance with its host keys from the guest attributes (ssh_utils GetInstance,
# GetHostKeysFromGuestAttributes). Granted on the bastion only, in a role of our own: whether
# roles/compute.osLogin holds them could not be checked here, and a repeated permission costs nothing.
HOST_KEY_PERMISSIONS = ("compute.instances.get", "compute.instances.getGuestAttributes")

# Debian's unattended-upgrades installs security updates daily (the GCE image ships it; this makes
# sure it is on). Every boot: the startup script runs each time, and every line is idempotent.
_PATCHING = """\
export DEBIAN_FRONTEND=noninteractive
apt-get -q update || echo "bastion: apt-get update failed; unattended-upgrades retries daily" >&2
apt-get -q -y install unattended-upgrades || true
printf 'APT::Periodic::Update-Package-Lists "1";\\nAPT::Periodic::Unattended-Upgrade "1";\\n' \\
  > /etc/apt/apt.conf.d/20auto-upgrades"""


def startup_script(ssh_forward_to: tuple[str, int] | None) -> str:
    """The boot script: in ssh mode sshd becomes forward-only first, then the daily security updates."""
    lines = ["#!/bin/bash", "set -euo pipefail"]
    if ssh_forward_to is not None:
        lines.append(forward_only_script(*ssh_forward_to))
    lines.append(_PATCHING)
    return "\n".join(lines) + "\n"


class Bastion(pulumi.ComponentResource):
    """The jump host for the post-deploy step."""

    instance: gcp.compute.Instance
    service_account: gcp.serviceaccount.Account
    info: pulumi.Output[dict[str, str]]

    def __init__(
        self,
        name: str,
        meta: StackMeta,
        settings: GcpSettings,
        bastion: BastionSettings,
        *,
        network_id: pulumi.Input[str],
        subnet_id: pulumi.Input[str],
        db_range: pulumi.Input[str],
        db_host: pulumi.Output[str],
        db_port: int,
        nat: pulumi.Resource | None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("private-postgres:gcp:Bastion", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ssh = bastion.mode is BastionMode.SSH
        self._meta, self._settings = meta, settings

        self.service_account = gcp.serviceaccount.Account(
            f"{name}-sa",
            account_id=_account_id(meta.prefix),
            project=settings.project,
            display_name=f"{meta.prefix} bastion",
            description="Bastion VM identity: writes its own logs and metrics, nothing else",
            opts=child,
        )
        for role in SERVICE_ACCOUNT_ROLES:
            gcp.projects.IAMMember(
                f"{name}-sa-{role.rsplit('.', 1)[-1].lower()}",
                project=settings.project,
                role=role,
                member=self.service_account.member,
                opts=child,
            )
        self._firewalls(
            name, network_id, db_range, [str(c) for c in bastion.ssh_allowed_cidrs] if ssh else None, db_port
        )

        access_configs: list[gcp.compute.InstanceNetworkInterfaceAccessConfigArgs] = []
        address: gcp.compute.Address | None = None
        metadata = {
            "block-project-ssh-keys": "TRUE",  # CIS GCP 4.3
            "serial-port-enable": "FALSE",  # CIS GCP 4.5
            "enable-oslogin": "FALSE" if ssh else "TRUE",  # CIS GCP 4.4 (iap mode)
            # The guest agent publishes the host keys as guest attributes; `gcloud compute ssh` reads
            # them only when this is TRUE and otherwise cannot verify the first connection under
            # --strict-host-key-checking=yes (ssh_utils._MetadataHasGuestAttributesEnabled).
            "enable-guest-attributes": "TRUE",
        }
        script: pulumi.Input[str] = startup_script(None)
        if ssh:
            # ssh mode only: a static address (a stable `bastion.host` output) and the configured key.
            assert bastion.ssh_public_key is not None  # config requires it in ssh mode
            address = gcp.compute.Address(
                f"{name}-ip",
                name=f"{meta.prefix}-bastion",
                project=settings.project,
                region=settings.region,
                address_type="EXTERNAL",
                labels=meta.labels,
                opts=child,
            )
            access_configs.append(gcp.compute.InstanceNetworkInterfaceAccessConfigArgs(nat_ip=address.address))
            # One line: config refuses a key with a line break, which would add a second key here.
            metadata["ssh-keys"] = f"{SSH_USER}:{bastion.ssh_public_key}"
            script = db_host.apply(lambda host: startup_script((host, db_port)))

        self.instance = gcp.compute.Instance(
            f"{name}-instance",
            name=f"{meta.prefix}-bastion",
            project=settings.project,
            zone=settings.zone,
            machine_type=MACHINE_TYPE,
            boot_disk=gcp.compute.InstanceBootDiskArgs(
                auto_delete=True,
                initialize_params=gcp.compute.InstanceBootDiskInitializeParamsArgs(
                    image=IMAGE, size=10, type="pd-balanced"
                ),
            ),
            network_interfaces=[
                gcp.compute.InstanceNetworkInterfaceArgs(
                    subnetwork=subnet_id,
                    access_configs=access_configs,  # iap mode: none, so no external IP (CIS GCP 4.9)
                )
            ],
            service_account=gcp.compute.InstanceServiceAccountArgs(
                email=self.service_account.email, scopes=list(SCOPES)
            ),
            shielded_instance_config=gcp.compute.InstanceShieldedInstanceConfigArgs(
                enable_secure_boot=True,  # CIS GCP 4.8
                enable_vtpm=True,
                enable_integrity_monitoring=True,
            ),
            can_ip_forward=False,  # CIS GCP 4.6
            metadata=metadata,
            # A changed script replaces the VM (TPG CustomizeDiff ForceNewIf metadata_startup_script),
            # so the sshd of a running bastion always matches the database it forwards to.
            metadata_startup_script=script,
            allow_stopping_for_update=True,  # machine-type changes apply with a restart, not a replacement
            labels=meta.labels,
            opts=pulumi.ResourceOptions(
                parent=self,
                # The first boot patches through NAT (iap mode): boot once it exists.
                depends_on=[nat] if nat is not None else [],
                # The debian-12 family moves with every point release: without this every preview
                # would plan a bastion replacement. unattended-upgrades patches the running one.
                ignore_changes=["bootDisk.initializeParams.image"],
            ),
        )
        self._operators(name, child)

        zone, project = settings.zone, settings.project
        if address is not None:
            self.info = pulumi.Output.all(self.instance.name, address.address).apply(
                lambda v: {
                    "mode": BastionMode.SSH.value,
                    "target": v[0],
                    "zone": zone,
                    "project": project,
                    "host": v[1],
                    "user": SSH_USER,
                }
            )
        else:
            self.info = self.instance.name.apply(
                lambda n: {"mode": BastionMode.IAP.value, "target": n, "zone": zone, "project": project}
            )
        self.register_outputs(
            {"instance": self.instance.name, "service_account": self.service_account.email, "info": self.info}
        )

    def _firewalls(
        self,
        name: str,
        network_id: pulumi.Input[str],
        db_range: pulumi.Input[str],
        ssh_sources: list[str] | None,
        db_port: int,
    ) -> None:
        """Firewall rules target the service account, not a network tag: anyone who can edit an
        instance can add a tag, only IAM can attach a service account."""
        meta, settings = self._meta, self._settings
        email = self.service_account.email
        child = pulumi.ResourceOptions(parent=self)
        logged = gcp.compute.FirewallLogConfigArgs(metadata="INCLUDE_ALL_METADATA")

        def rule(
            suffix: str,
            firewall_name: str,
            *,
            direction: str,
            priority: int,
            description: str,
            allows: list[gcp.compute.FirewallAllowArgs] | None = None,
            denies: list[gcp.compute.FirewallDenyArgs] | None = None,
            source_ranges: list[str] | None = None,
            destination_ranges: list[pulumi.Input[str]] | None = None,
            log_config: gcp.compute.FirewallLogConfigArgs | None = None,
        ) -> None:
            gcp.compute.Firewall(
                f"{name}-{suffix}",
                name=f"{meta.prefix}-{firewall_name}",
                project=settings.project,
                network=network_id,
                direction=direction,
                priority=priority,
                allows=allows,
                denies=denies,
                source_ranges=source_ranges,
                destination_ranges=destination_ranges,
                target_service_accounts=[email],
                log_config=log_config,
                description=description,
                opts=child,
            )

        rule(
            "ssh-in",
            "bastion-ssh",
            direction="INGRESS",
            priority=1000,
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=["22"])],
            # iap: CIS GCP 3.10 (only IAP's range); ssh: the configured CIDRs, each a /24 or narrower (CIS GCP 3.6).
            source_ranges=ssh_sources if ssh_sources is not None else [IAP_RANGE],
            log_config=logged,
            description="SSH to the bastion" if ssh_sources is not None else "SSH to the bastion from IAP",
        )
        rule(
            "to-db",
            "bastion-db",
            direction="EGRESS",
            priority=1000,
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=[str(db_port)])],
            destination_ranges=[db_range],
            log_config=logged,
            description="PostgreSQL to the Cloud SQL private range only",
        )
        rule(
            "to-google-apis",
            "bastion-apis",
            direction="EGRESS",
            priority=1000,
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=["443"])],
            destination_ranges=[PRIVATE_GOOGLE_APIS_CIDR],  # private.googleapis.com (see network.py)
            description="HTTPS to Google APIs through private Google access",
        )
        # The patch path: package mirrors (deb.debian.org is a CDN, no fixed range) over HTTP(S) only.
        rule(
            "to-mirrors",
            "bastion-mirrors",
            direction="EGRESS",
            priority=1100,
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=["80", "443"])],
            destination_ranges=["0.0.0.0/0"],
            log_config=logged,
            description="HTTP(S) to package mirrors (unattended-upgrades); nothing else leaves the bastion",
        )
        # Everything else out of the bastion is refused. The metadata server (OS Login, keys) is
        # not subject to VPC firewall rules, and replies to allowed ingress are stateful.
        rule(
            "deny-out",
            "bastion-deny-egress",
            direction="EGRESS",
            priority=65000,
            denies=[gcp.compute.FirewallDenyArgs(protocol="all")],
            destination_ranges=["0.0.0.0/0"],
            log_config=logged,
            description="No other egress from the bastion",
        )

    def _operators(self, name: str, child: pulumi.ResourceOptions) -> None:
        """What `gcloud compute ssh --tunnel-through-iap` needs, for each operator, as narrow as it goes."""
        meta, settings = self._meta, self._settings
        if not settings.operators:
            return
        role_id = meta.prefix.replace("-", "_")
        # Custom roles keep their id 37 days after a delete; the provider undeletes it on create, so a
        # fixed id survives destroy and up (lifecycle rules).
        project_role = gcp.projects.IAMCustomRole(
            f"{name}-operator-role",
            project=settings.project,
            role_id=f"{role_id}_operator",
            title=f"{meta.prefix} bastion operator (project)",
            description="gcloud compute ssh reads the project before it connects",
            permissions=list(PROJECT_PERMISSIONS),
            opts=child,
        )
        host_keys_role = gcp.projects.IAMCustomRole(
            f"{name}-host-keys-role",
            project=settings.project,
            role_id=f"{role_id}_host_keys",
            title=f"{meta.prefix} bastion host keys",
            description="gcloud compute ssh reads the bastion and its published host keys",
            permissions=list(HOST_KEY_PERMISSIONS),
            opts=child,
        )
        for member in settings.operators:
            suffix = member_suffix(member)
            gcp.projects.IAMMember(
                f"{name}-project-{suffix}",
                project=settings.project,
                role=project_role.name,  # compute.projects.get only
                member=member,
                opts=child,
            )
            gcp.iap.TunnelInstanceIAMMember(
                f"{name}-tunnel-{suffix}",
                project=settings.project,
                zone=settings.zone,
                instance=self.instance.name,
                role="roles/iap.tunnelResourceAccessor",  # this bastion only, not the project
                member=member,
                opts=child,
            )
            gcp.compute.InstanceIAMMember(
                f"{name}-oslogin-{suffix}",
                project=settings.project,
                zone=settings.zone,
                instance_name=self.instance.name,
                role="roles/compute.osLogin",  # log in without sudo, on this bastion only
                member=member,
                opts=child,
            )
            gcp.compute.InstanceIAMMember(
                f"{name}-keys-{suffix}",
                project=settings.project,
                zone=settings.zone,
                instance_name=self.instance.name,
                role=host_keys_role.name,  # read this bastion and its host keys
                member=member,
                opts=child,
            )
            # OS Login on a VM that runs as a service account requires actAs on that account.
            gcp.serviceaccount.IAMMember(
                f"{name}-actas-{suffix}",
                service_account_id=self.service_account.name,
                role="roles/iam.serviceAccountUser",
                member=member,
                opts=child,
            )
            if settings.operators_organization is not None:
                # Accounts from outside the project's organization may use OS Login only with this
                # role, granted on the organization (OS Login docs, "external users"; needs an org admin).
                gcp.organizations.IAMMember(
                    f"{name}-external-{suffix}",
                    org_id=settings.operators_organization,
                    role="roles/compute.osLoginExternalUser",
                    member=member,
                    opts=child,
                )


def _account_id(prefix: str) -> str:
    """A service account id (6-30 characters, a letter first) from the prefix, distinct per prefix.

    Long prefixes are cut and get a hash of the whole prefix, so two stacks whose prefixes share
    their first characters never claim the same account in one project.
    """
    account = f"{prefix}-bastion"
    if len(account) > 30:
        digest = hashlib.sha256(prefix.encode()).hexdigest()[:6]
        account = f"{prefix[:19].rstrip('-')}-{digest}-bst"
    return account if account[0].isalpha() else f"b{account}"[:30]
