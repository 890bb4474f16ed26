"""The bastion: a tiny Shielded VM with no external address, reached through IAP TCP forwarding
and OS Login (or, in ssh mode, through OpenSSH from restricted CIDRs), its own service account,
its firewall rules, and the IAM that lets the operators open the tunnel."""

from __future__ import annotations

import hashlib

import pulumi
import pulumi_gcp as gcp

from infra.config import StackConfig
from infra.enums import BastionMode
from infra.provision.gcp.network import PRIVATE_GOOGLE_APIS_CIDR
from infra.provision.gcp.secrets import member_suffix

__all__ = ["IAP_RANGE", "IMAGE", "MACHINE_TYPE", "SSH_USER", "Bastion"]

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


class Bastion(pulumi.ComponentResource):
    """The jump host for the post-deploy step."""

    instance: gcp.compute.Instance
    service_account: gcp.serviceaccount.Account
    info: pulumi.Output[dict[str, str]]

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        *,
        network_id: pulumi.Input[str],
        subnet_id: pulumi.Input[str],
        db_range: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("private-postgres:gcp:Bastion", name, None, opts)
        assert cfg.gcp is not None
        settings = cfg.gcp
        child = pulumi.ResourceOptions(parent=self)
        ssh = cfg.bastion.mode is BastionMode.SSH
        port = cfg.database.port

        self.service_account = gcp.serviceaccount.Account(
            f"{name}-sa",
            account_id=_account_id(cfg.prefix),
            project=settings.project,
            display_name=f"{cfg.prefix} bastion",
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
        sa_email = self.service_account.email

        # Firewall rules target the service account, not a network tag: anyone who can edit an
        # instance can add a tag, only IAM can attach a service account.
        gcp.compute.Firewall(
            f"{name}-ssh-in",
            name=f"{cfg.prefix}-bastion-ssh",
            project=settings.project,
            network=network_id,
            direction="INGRESS",
            priority=1000,
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=["22"])],
            # iap: CIS GCP 3.10 (only IAP's range); ssh: the configured CIDRs, never 0.0.0.0/0 (CIS GCP 3.6).
            source_ranges=[str(c) for c in cfg.bastion.ssh_allowed_cidrs] if ssh else [IAP_RANGE],
            target_service_accounts=[sa_email],
            log_config=gcp.compute.FirewallLogConfigArgs(metadata="INCLUDE_ALL_METADATA"),
            description="SSH to the bastion from IAP TCP forwarding" if not ssh else "SSH to the bastion",
            opts=child,
        )
        gcp.compute.Firewall(
            f"{name}-to-db",
            name=f"{cfg.prefix}-bastion-db",
            project=settings.project,
            network=network_id,
            direction="EGRESS",
            priority=1000,
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=[str(port)])],
            destination_ranges=[db_range],
            target_service_accounts=[sa_email],
            log_config=gcp.compute.FirewallLogConfigArgs(metadata="INCLUDE_ALL_METADATA"),
            description="PostgreSQL to the Cloud SQL private range only",
            opts=child,
        )
        gcp.compute.Firewall(
            f"{name}-to-google-apis",
            name=f"{cfg.prefix}-bastion-apis",
            project=settings.project,
            network=network_id,
            direction="EGRESS",
            priority=1000,
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=["443"])],
            destination_ranges=[PRIVATE_GOOGLE_APIS_CIDR],  # private.googleapis.com (see network.py)
            target_service_accounts=[sa_email],
            description="HTTPS to Google APIs through private Google access",
            opts=child,
        )
        # Everything else out of the bastion is refused. The metadata server (OS Login, keys) is
        # not subject to VPC firewall rules, and replies to allowed ingress are stateful.
        gcp.compute.Firewall(
            f"{name}-deny-out",
            name=f"{cfg.prefix}-bastion-deny-egress",
            project=settings.project,
            network=network_id,
            direction="EGRESS",
            priority=65000,
            denies=[gcp.compute.FirewallDenyArgs(protocol="all")],
            destination_ranges=["0.0.0.0/0"],
            target_service_accounts=[sa_email],
            log_config=gcp.compute.FirewallLogConfigArgs(metadata="INCLUDE_ALL_METADATA"),
            description="No other egress from the bastion",
            opts=child,
        )

        access_configs: list[gcp.compute.InstanceNetworkInterfaceAccessConfigArgs] = []
        address: gcp.compute.Address | None = None
        metadata = {
            "block-project-ssh-keys": "TRUE",  # CIS GCP 4.3
            "serial-port-enable": "FALSE",  # CIS GCP 4.5
            "enable-oslogin": "FALSE" if ssh else "TRUE",  # CIS GCP 4.4 (iap mode)
        }
        if ssh:
            # ssh mode only: a static address (a stable `bastion.host` output) and the configured key.
            assert cfg.bastion.ssh_public_key is not None
            address = gcp.compute.Address(
                f"{name}-ip",
                name=f"{cfg.prefix}-bastion",
                project=settings.project,
                region=settings.region,
                address_type="EXTERNAL",
                labels=cfg.labels,
                opts=child,
            )
            access_configs.append(gcp.compute.InstanceNetworkInterfaceAccessConfigArgs(nat_ip=address.address))
            metadata["ssh-keys"] = f"{SSH_USER}:{cfg.bastion.ssh_public_key}"

        self.instance = gcp.compute.Instance(
            f"{name}-instance",
            name=f"{cfg.prefix}-bastion",
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
            service_account=gcp.compute.InstanceServiceAccountArgs(email=sa_email, scopes=list(SCOPES)),
            shielded_instance_config=gcp.compute.InstanceShieldedInstanceConfigArgs(
                enable_secure_boot=True,  # CIS GCP 4.8
                enable_vtpm=True,
                enable_integrity_monitoring=True,
            ),
            can_ip_forward=False,  # CIS GCP 4.6
            metadata=metadata,
            allow_stopping_for_update=True,  # machine-type changes apply with a restart, not a replacement
            labels=cfg.labels,
            opts=pulumi.ResourceOptions(
                parent=self,
                # The debian-12 family moves with every point release: without this every preview
                # would plan a bastion replacement. Patch in place (apt) or replace on purpose.
                ignore_changes=["bootDisk.initializeParams.image"],
            ),
        )

        for member in settings.operators:
            suffix = member_suffix(member)
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
            # OS Login on a VM that runs as a service account requires actAs on that account.
            gcp.serviceaccount.IAMMember(
                f"{name}-actas-{suffix}",
                service_account_id=self.service_account.name,
                role="roles/iam.serviceAccountUser",
                member=member,
                opts=child,
            )

        zone = settings.zone
        project = settings.project
        if address is not None:
            self.info = pulumi.Output.all(self.instance.name, address.address).apply(
                lambda v: {
                    "mode": "ssh",
                    "target": v[0],
                    "zone": zone,
                    "project": project,
                    "host": v[1],
                    "user": SSH_USER,
                }
            )
        else:
            self.info = self.instance.name.apply(
                lambda n: {"mode": "iap", "target": n, "zone": zone, "project": project}
            )
        self.register_outputs({"instance": self.instance.name, "service_account": sa_email, "info": self.info})


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
