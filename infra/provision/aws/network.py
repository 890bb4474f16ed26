"""The network: a VPC with private subnets in two AZs and no internet route, the SSM interface
endpoints and the S3 gateway endpoint that let the bastion work and be patched without NAT, VPC
flow logs, and the security groups (rules as separate resources only). Or an existing VPC and
its private subnets."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Sequence

import pulumi
import pulumi_aws as aws

from infra.config import AwsSettings, BastionSettings, StackMeta
from infra.enums import BastionMode
from infra.provision.aws.iam import service_role

__all__ = ["AL2023_REPO_BUCKET", "Network", "patch_buckets"]

_SSM_SERVICES = ("ssm", "ssmmessages", "ec2messages")
_AZ_COUNT = 2  # RDS subnet groups need two AZs; Multi-AZ uses them
# Amazon Linux 2023 serves its dnf repositories from this bucket in every region (the mirrorlist in
# /etc/yum.repos.d/amazonlinux.repo: https://al2023-repos-$awsregion-de612dc2.s3$dualstack.$awsregion.$awsdomain;
# seen in public AL2023 configurations, not on an AWS documentation page: verify with `dnf repolist -v`).
AL2023_REPO_BUCKET = "al2023-repos-{region}-de612dc2"


def patch_buckets(region: str) -> tuple[str, ...]:
    """The S3 buckets the bastion reads through the gateway endpoint: AL2023 packages and SSM Agent
    updates (Systems Manager User Guide, "SSM Agent communications with AWS managed S3 buckets"; verify)."""
    return (
        AL2023_REPO_BUCKET.format(region=region),
        f"amazon-ssm-{region}",
        f"amazon-ssm-packages-{region}",
        f"{region}-birdwatcher-prod",
        f"aws-ssm-{region}",
        f"patch-baseline-snapshot-{region}",
    )


class Network(pulumi.ComponentResource):
    """VPC, subnets, endpoints and the database / bastion / endpoint security groups."""

    vpc_id: pulumi.Output[str]
    private_subnet_ids: list[pulumi.Output[str]]
    public_subnet_id: pulumi.Output[str] | None
    db_sg: aws.ec2.SecurityGroup
    bastion_sg: aws.ec2.SecurityGroup
    #: What the bastion needs before it boots: the SSM and S3 endpoints and its egress rules to them.
    bastion_paths: list[pulumi.Resource]

    def __init__(
        self,
        name: str,
        meta: StackMeta,
        settings: AwsSettings,
        bastion: BastionSettings,
        *,
        db_port: int,
        kms_key_arn: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("private-postgres:aws:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.public_subnet_id = None
        self.bastion_paths = []
        self._meta = meta
        self._settings = settings
        s3: aws.ec2.VpcEndpoint | None = None
        if settings.existing_vpc_id is not None:
            # An existing VPC brings its own endpoints, NAT and flow logs; none of ours.
            self.vpc_id = pulumi.Output.from_input(settings.existing_vpc_id)
            self.private_subnet_ids = [pulumi.Output.from_input(s) for s in settings.existing_private_subnet_ids]
            if settings.existing_public_subnet_id is not None:
                self.public_subnet_id = pulumi.Output.from_input(settings.existing_public_subnet_id)
        else:
            s3 = self._new_vpc(name, bastion, kms_key_arn, child)

        self.db_sg = aws.ec2.SecurityGroup(
            f"{name}-db",
            vpc_id=self.vpc_id,
            description="PostgreSQL: reachable only from the bastion and the app security groups",
            # No inline ingress/egress: rules are separate resources (inline + rule resources fight, FSBP EC2.19).
            tags={**meta.labels, "Name": f"{meta.prefix}-db"},
            opts=child,
        )
        self.bastion_sg = aws.ec2.SecurityGroup(
            f"{name}-bastion",
            vpc_id=self.vpc_id,
            description="Bastion: no inbound in ssm mode; egress only to the database and the SSM endpoints",
            tags={**meta.labels, "Name": f"{meta.prefix}-bastion"},
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-db-from-bastion",
            security_group_id=self.db_sg.id,
            referenced_security_group_id=self.bastion_sg.id,
            ip_protocol="tcp",
            from_port=db_port,
            to_port=db_port,
            description="PostgreSQL from the bastion",
            opts=child,
        )
        for index, group in enumerate(settings.app_security_group_ids):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-db-from-app-{index}",
                security_group_id=self.db_sg.id,
                referenced_security_group_id=group,
                ip_protocol="tcp",
                from_port=db_port,
                to_port=db_port,
                description=f"PostgreSQL from application security group {group}",
                opts=child,
            )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-bastion-to-db",
            security_group_id=self.bastion_sg.id,
            referenced_security_group_id=self.db_sg.id,
            ip_protocol="tcp",
            from_port=db_port,
            to_port=db_port,
            description="PostgreSQL to the database only",
            opts=child,
        )
        # The SSM agent talks HTTPS to the endpoints (or, in existing VPCs, to the regional service).
        self.bastion_paths.append(
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-bastion-https",
                security_group_id=self.bastion_sg.id,
                cidr_ipv4=str(settings.vpc_cidr) if settings.existing_vpc_id is None else "0.0.0.0/0",
                ip_protocol="tcp",
                from_port=443,
                to_port=443,
                description="HTTPS to the SSM endpoints (agent channel)",
                opts=child,
            )
        )
        if s3 is not None:
            # dnf (AL2023 repositories) and SSM Agent updates: HTTPS to S3 through the gateway endpoint only.
            self.bastion_paths.append(
                aws.vpc.SecurityGroupEgressRule(
                    f"{name}-bastion-s3",
                    security_group_id=self.bastion_sg.id,
                    prefix_list_id=s3.prefix_list_id,
                    ip_protocol="tcp",
                    from_port=443,
                    to_port=443,
                    description="HTTPS to S3 (package repositories) through the gateway endpoint",
                    opts=child,
                )
            )
        if bastion.mode is BastionMode.SSH:
            for index, cidr in enumerate(bastion.ssh_allowed_cidrs):
                aws.vpc.SecurityGroupIngressRule(
                    f"{name}-bastion-ssh-{index}",
                    security_group_id=self.bastion_sg.id,
                    cidr_ipv4=str(cidr),  # a /24 or narrower, 256 addresses in all: config (FSBP EC2.13)
                    ip_protocol="tcp",
                    from_port=22,
                    to_port=22,
                    description=f"SSH to the bastion from {cidr}",
                    opts=child,
                )
        self.register_outputs(
            {"vpc_id": self.vpc_id, "private_subnet_ids": self.private_subnet_ids, "db_sg_id": self.db_sg.id}
        )

    def _flow_logs(
        self, name: str, vpc: aws.ec2.Vpc, kms_key_arn: pulumi.Input[str], child: pulumi.ResourceOptions
    ) -> None:
        """Every accepted and rejected flow of the VPC to CloudWatch (FSBP EC2.6)."""
        meta, settings = self._meta, self._settings
        group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            name=f"/vpc/{meta.prefix}/flow-logs",  # a fixed name: no random suffix to diff or orphan
            retention_in_days=settings.log_retention_days,
            kms_key_id=kms_key_arn,  # encrypted with the stack's key (Config rule cloudwatch-log-group-encrypted)
            tags=meta.labels,
            opts=child,
        )
        account = aws.get_caller_identity_output().account_id
        partition = aws.get_partition_output().partition
        region = settings.region
        # Confused deputy: only flow logs of this account and region may use the role (VPC User Guide,
        # "IAM role for publishing flow logs to CloudWatch Logs", trust policy with aws:SourceAccount/SourceArn).
        conditions = pulumi.Output.all(partition, account).apply(
            lambda v: {
                "StringEquals": {"aws:SourceAccount": v[1]},
                "ArnLike": {"aws:SourceArn": f"arn:{v[0]}:ec2:{region}:{v[1]}:vpc-flow-log/*"},
            }
        )
        role = service_role(f"{name}-flow-logs", "vpc-flow-logs.amazonaws.com", meta, child, conditions=conditions)
        aws.iam.RolePolicy(
            f"{name}-flow-logs",
            role=role.id,
            policy=pulumi.Output.all(group.arn, partition, account).apply(
                lambda v: _flow_logs_role_policy(v[0], f"arn:{v[1]}:logs:{region}:{v[2]}:log-group:*")
            ),
            opts=child,
        )
        aws.ec2.FlowLog(
            f"{name}-flow-logs",
            vpc_id=vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=600,  # the API default, set so a refresh reads back what we declared
            tags=meta.labels,
            opts=child,
        )

    def _new_vpc(
        self, name: str, bastion: BastionSettings, kms_key_arn: pulumi.Input[str], child: pulumi.ResourceOptions
    ) -> aws.ec2.VpcEndpoint:
        """The VPC and its subnets, endpoints and flow logs; returns the S3 gateway endpoint."""
        meta, settings = self._meta, self._settings
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=str(settings.vpc_cidr),
            enable_dns_support=True,  # interface endpoints with private DNS need both DNS settings
            enable_dns_hostnames=True,
            tags={**meta.labels, "Name": meta.prefix},
            opts=child,
        )
        self.vpc_id = vpc.id
        # The default security group allows all traffic between its members: empty it (FSBP EC2.2).
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg",
            vpc_id=vpc.id,
            tags={**meta.labels, "Name": f"{meta.prefix}-default-closed"},
            opts=child,
        )
        self._flow_logs(name, vpc, kms_key_arn, child)
        zones = aws.get_availability_zones_output(state="available")
        # Stable, computed from the VPC CIDR: /20s (for a /16) leave room for more tiers later.
        new_prefix = min(settings.vpc_cidr.prefixlen + 4, 28)
        blocks = list(settings.vpc_cidr.subnets(new_prefix=new_prefix))
        private_rt = aws.ec2.RouteTable(
            f"{name}-private",
            vpc_id=vpc.id,
            # No routes besides the implicit local one (and the S3 gateway's prefix list): no internet.
            tags={**meta.labels, "Name": f"{meta.prefix}-private"},
            opts=child,
        )
        route_tables: list[pulumi.Output[str]] = [private_rt.id]
        self.private_subnet_ids = []
        for index in range(_AZ_COUNT):
            subnet = aws.ec2.Subnet(
                f"{name}-private-{index}",
                vpc_id=vpc.id,
                cidr_block=str(blocks[index]),
                availability_zone=zones.names.apply(_nth(index)),
                map_public_ip_on_launch=False,  # FSBP EC2.15
                tags={**meta.labels, "Name": f"{meta.prefix}-private-{index}", "tier": "private"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{index}", subnet_id=subnet.id, route_table_id=private_rt.id, opts=child
            )
            self.private_subnet_ids.append(subnet.id)

        endpoint_sg = aws.ec2.SecurityGroup(
            f"{name}-endpoints",
            vpc_id=vpc.id,
            description="SSM interface endpoints: HTTPS from inside the VPC",
            tags={**meta.labels, "Name": f"{meta.prefix}-endpoints"},
            opts=child,
        )
        self.bastion_paths.append(
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-endpoints-https",
                security_group_id=endpoint_sg.id,
                cidr_ipv4=str(settings.vpc_cidr),
                ip_protocol="tcp",
                from_port=443,
                to_port=443,
                description="HTTPS from the VPC",
                opts=child,
            )
        )
        # Session Manager without internet needs ssm, ssmmessages and ec2messages (Systems Manager User
        # Guide, "Use VPC endpoints"); the bastion waits for them (the agent registers at boot).
        for service in _SSM_SERVICES:
            self.bastion_paths.append(
                aws.ec2.VpcEndpoint(
                    f"{name}-{service}",
                    vpc_id=vpc.id,
                    service_name=f"com.amazonaws.{settings.region}.{service}",
                    vpc_endpoint_type="Interface",
                    private_dns_enabled=True,  # the agent resolves the regional name to these endpoints
                    subnet_ids=self.private_subnet_ids,
                    security_group_ids=[endpoint_sg.id],
                    tags={**meta.labels, "Name": f"{meta.prefix}-{service}"},
                    opts=child,
                )
            )

        if bastion.mode is BastionMode.SSH:
            route_tables.append(self._public_subnet(name, vpc, zones, settings.vpc_cidr, new_prefix, child))
        # The patch path: a gateway endpoint (no NAT, no internet) that reaches only the package and
        # agent buckets. Gateway endpoints are routes, so every route table the bastion may use gets one.
        s3 = aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{settings.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=route_tables,
            policy=_s3_endpoint_policy(settings.region),
            tags={**meta.labels, "Name": f"{meta.prefix}-s3"},
            opts=child,
        )
        self.bastion_paths.append(s3)
        return s3

    def _public_subnet(
        self,
        name: str,
        vpc: aws.ec2.Vpc,
        zones: pulumi.Output[aws.GetAvailabilityZonesResult],
        vpc_cidr: ipaddress.IPv4Network,
        new_prefix: int,
        child: pulumi.ResourceOptions,
    ) -> pulumi.Output[str]:
        """ssh mode only: one public subnet for the bastion, routed to an internet gateway."""
        meta = self._meta
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=meta.labels, opts=child)
        public_rt = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=vpc.id,
            tags={**meta.labels, "Name": f"{meta.prefix}-public"},
            opts=child,
        )
        aws.ec2.Route(
            f"{name}-public-default",
            route_table_id=public_rt.id,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=igw.id,
            opts=child,
        )
        public = aws.ec2.Subnet(
            f"{name}-public-0",
            vpc_id=vpc.id,
            cidr_block=str(_last_block(vpc_cidr, new_prefix)),
            availability_zone=zones.names.apply(_nth(0)),
            map_public_ip_on_launch=False,  # the bastion asks for its address explicitly (FSBP EC2.15)
            tags={**meta.labels, "Name": f"{meta.prefix}-public-0", "tier": "public"},
            opts=child,
        )
        aws.ec2.RouteTableAssociation(f"{name}-public-0", subnet_id=public.id, route_table_id=public_rt.id, opts=child)
        self.public_subnet_id = public.id
        return public_rt.id


def _s3_endpoint_policy(region: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "PackagesAndAgentUpdatesOnly",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": [f"arn:aws:s3:::{bucket}/*" for bucket in patch_buckets(region)],
                }
            ],
        },
        sort_keys=True,
    )


def _flow_logs_role_policy(log_group_arn: str, any_group_arn: str) -> str:
    """The flow-logs service's documented actions, on this stack's group (DescribeLogGroups is a list call)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": [
                        "logs:CreateLogGroup",
                        "logs:CreateLogStream",
                        "logs:DescribeLogStreams",
                        "logs:PutLogEvents",
                    ],
                    "Resource": [log_group_arn, f"{log_group_arn}:*"],
                },
                {"Effect": "Allow", "Action": "logs:DescribeLogGroups", "Resource": any_group_arn},
            ],
        }
    )


def _nth(index: int) -> Callable[[Sequence[str]], str]:
    def pick(names: Sequence[str]) -> str:
        return names[index]

    return pick


def _last_block(cidr: ipaddress.IPv4Network, new_prefix: int) -> ipaddress.IPv4Network:
    return list(cidr.subnets(new_prefix=new_prefix))[-1]
