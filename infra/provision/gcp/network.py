"""The network: a custom-mode VPC with one subnet (private Google access, flow logs), private
service access for Cloud SQL (a reserved peering range and the service networking connection),
and a private DNS zone that sends Google API names to the private VIP (no internet needed)."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from infra.config import StackConfig

__all__ = ["PRIVATE_GOOGLE_APIS", "PRIVATE_GOOGLE_APIS_CIDR", "Network"]

# private.googleapis.com: reachable without an external address through private Google access.
PRIVATE_GOOGLE_APIS = ("199.36.153.8", "199.36.153.9", "199.36.153.10", "199.36.153.11")
PRIVATE_GOOGLE_APIS_CIDR = "199.36.153.8/30"


class Network(pulumi.ComponentResource):
    """VPC, subnet, the private service access range and connection, Google API DNS."""

    network: gcp.compute.Network
    subnet: gcp.compute.Subnetwork
    peering_range: gcp.compute.GlobalAddress
    private_access: gcp.servicenetworking.Connection
    db_range: pulumi.Output[str]

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("private-postgres:gcp:Network", name, None, opts)
        assert cfg.gcp is not None
        settings = cfg.gcp
        child = pulumi.ResourceOptions(parent=self)

        self.network = gcp.compute.Network(
            f"{name}-vpc",
            name=cfg.prefix,
            project=settings.project,
            auto_create_subnetworks=False,  # custom mode: no subnet in every region (CIS GCP 3.1 spirit)
            routing_mode="REGIONAL",
            description=f"{cfg.prefix}: private PostgreSQL and its bastion",
            opts=child,
        )
        self.subnet = gcp.compute.Subnetwork(
            f"{name}-subnet",
            name=f"{cfg.prefix}-private",  # <= 63 characters even for the longest region names
            project=settings.project,
            region=settings.region,
            network=self.network.id,
            ip_cidr_range=str(settings.subnet_cidr),
            private_ip_google_access=True,  # Google APIs without an external address
            # CIS GCP 3.8 (VPC flow logs). All three fields explicit: the API fills in defaults that
            # would otherwise show as a change on every preview.
            log_config=gcp.compute.SubnetworkLogConfigArgs(
                aggregation_interval="INTERVAL_5_SEC",
                flow_sampling=0.5,
                metadata="INCLUDE_ALL_METADATA",
            ),
            opts=child,
        )
        # Private service access: Google allocates Cloud SQL's private addresses from this range.
        self.peering_range = gcp.compute.GlobalAddress(
            f"{name}-psa",
            name=f"{cfg.prefix}-psa",
            project=settings.project,
            network=self.network.id,
            purpose="VPC_PEERING",
            address_type="INTERNAL",
            prefix_length=settings.psc_range_prefix,
            description=f"{cfg.prefix}: private service access range (Cloud SQL)",
            opts=child,
        )
        self.private_access = gcp.servicenetworking.Connection(
            f"{name}-psa",
            network=self.network.id,
            service="servicenetworking.googleapis.com",
            reserved_peering_ranges=[self.peering_range.name],
            # Removing the peering while Cloud SQL still holds addresses in it fails the destroy;
            # ABANDON leaves it to be deleted with the VPC.
            deletion_policy="ABANDON",
            opts=child,
        )
        prefix_length = settings.psc_range_prefix
        self.db_range = self.peering_range.address.apply(lambda address: f"{address}/{prefix_length}")

        # With no NAT and no external address, Google APIs are reached through the private VIP:
        # resolve *.googleapis.com to it inside this VPC only.
        apis = gcp.dns.ManagedZone(
            f"{name}-googleapis",
            name=f"{cfg.prefix}-googleapis",
            project=settings.project,
            dns_name="googleapis.com.",
            visibility="private",
            description=f"{cfg.prefix}: Google APIs through private Google access",
            private_visibility_config=gcp.dns.ManagedZonePrivateVisibilityConfigArgs(
                networks=[gcp.dns.ManagedZonePrivateVisibilityConfigNetworkArgs(network_url=self.network.id)],
            ),
            labels=cfg.labels,
            opts=child,
        )
        gcp.dns.RecordSet(
            f"{name}-googleapis-a",
            project=settings.project,
            managed_zone=apis.name,
            name="private.googleapis.com.",
            type="A",
            ttl=300,
            rrdatas=list(PRIVATE_GOOGLE_APIS),
            opts=child,
        )
        gcp.dns.RecordSet(
            f"{name}-googleapis-cname",
            project=settings.project,
            managed_zone=apis.name,
            name="*.googleapis.com.",
            type="CNAME",
            ttl=300,
            rrdatas=["private.googleapis.com."],
            opts=child,
        )
        self.register_outputs(
            {
                "network_id": self.network.id,
                "subnet_id": self.subnet.id,
                "db_range": self.db_range,
                "peering": self.private_access.peering,
            }
        )
