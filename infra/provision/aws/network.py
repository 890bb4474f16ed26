"""The network: a VPC with private subnets in two AZs and no internet route, the SSM interface
endpoints that let the bastion work without NAT, and the security groups (rules as separate
resources only). Or an existing VPC and its private subnets."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Sequence

import pulumi
import pulumi_aws as aws

from infra.config import AwsSettings, StackConfig
from infra.enums import BastionMode
from infra.provision.aws.iam import service_role

__all__ = ["Network"]

_SSM_SERVICES = ("ssm", "ssmmessages", "ec2messages")
_AZ_COUNT = 2  # RDS subnet groups need two AZs; Multi-AZ uses them


class Network(pulumi.ComponentResource):
    """VPC, subnets, endpoints and the database / bastion / endpoint security groups."""

    vpc_id: pulumi.Output[str]
    private_subnet_ids: list[pulumi.Output[str]]
    public_subnet_id: pulumi.Output[str] | None
    db_sg: aws.ec2.SecurityGroup
    bastion_sg: aws.ec2.SecurityGroup

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("private-postgres:aws:Network", name, None, opts)
        assert cfg.aws is not None
        settings = cfg.aws
        child = pulumi.ResourceOptions(parent=self)
        self.public_subnet_id = None

        if settings.existing_vpc_id is not None:
            self.vpc_id = pulumi.Output.from_input(settings.existing_vpc_id)
            self.private_subnet_ids = [pulumi.Output.from_input(s) for s in settings.existing_private_subnet_ids]
            if settings.existing_public_subnet_id is not None:
                self.public_subnet_id = pulumi.Output.from_input(settings.existing_public_subnet_id)
        else:
            self._new_vpc(name, cfg, settings, child)

        self.db_sg = aws.ec2.SecurityGroup(
            f"{name}-db",
            vpc_id=self.vpc_id,
            description="PostgreSQL: reachable only from the bastion and the app security groups",
            # No inline ingress/egress: rules are separate resources (inline + rule resources fight, FSBP EC2.19).
            tags={**cfg.labels, "Name": f"{cfg.prefix}-db"},
            opts=child,
        )
        self.bastion_sg = aws.ec2.SecurityGroup(
            f"{name}-bastion",
            vpc_id=self.vpc_id,
            description="Bastion: no inbound in ssm mode; egress only to the database and the SSM endpoints",
            tags={**cfg.labels, "Name": f"{cfg.prefix}-bastion"},
            opts=child,
        )
        port = cfg.database.port
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-db-from-bastion",
            security_group_id=self.db_sg.id,
            referenced_security_group_id=self.bastion_sg.id,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            description="PostgreSQL from the bastion",
            opts=child,
        )
        for index, group in enumerate(settings.app_security_group_ids):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-db-from-app-{index}",
                security_group_id=self.db_sg.id,
                referenced_security_group_id=group,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                description=f"PostgreSQL from application security group {group}",
                opts=child,
            )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-bastion-to-db",
            security_group_id=self.bastion_sg.id,
            referenced_security_group_id=self.db_sg.id,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            description="PostgreSQL to the database only",
            opts=child,
        )
        # The SSM agent talks HTTPS to the endpoints (or, in ssh mode / existing VPCs, to the regional service).
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
        if cfg.bastion.mode is BastionMode.SSH:
            for index, cidr in enumerate(cfg.bastion.ssh_allowed_cidrs):
                aws.vpc.SecurityGroupIngressRule(
                    f"{name}-bastion-ssh-{index}",
                    security_group_id=self.bastion_sg.id,
                    cidr_ipv4=str(cidr),  # never 0.0.0.0/0: refused by config (FSBP EC2.13)
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
        self, name: str, cfg: StackConfig, settings: AwsSettings, vpc: aws.ec2.Vpc, child: pulumi.ResourceOptions
    ) -> None:
        """Every accepted and rejected flow of the VPC to CloudWatch (FSBP EC2.6)."""
        group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            name=f"/vpc/{cfg.prefix}/flow-logs",  # a fixed name: no random suffix to diff or orphan
            retention_in_days=settings.log_retention_days,
            tags=cfg.labels,
            opts=child,
        )
        role = service_role(f"{name}-flow-logs", "vpc-flow-logs.amazonaws.com", cfg, child)
        # Write access to this one log group only (least privilege; no logs:* on *).
        aws.iam.RolePolicy(
            f"{name}-flow-logs", role=role.id, policy=group.arn.apply(_flow_logs_role_policy), opts=child
        )
        aws.ec2.FlowLog(
            f"{name}-flow-logs",
            vpc_id=vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=600,  # the API default, set so a refresh reads back what we declared
            tags=cfg.labels,
            opts=child,
        )

    def _new_vpc(self, name: str, cfg: StackConfig, settings: AwsSettings, child: pulumi.ResourceOptions) -> None:
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=str(settings.vpc_cidr),
            enable_dns_support=True,  # interface endpoints with private DNS need both DNS settings
            enable_dns_hostnames=True,
            tags={**cfg.labels, "Name": cfg.prefix},
            opts=child,
        )
        self.vpc_id = vpc.id
        # The default security group allows all traffic between its members: empty it (FSBP EC2.2).
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg",
            vpc_id=vpc.id,
            tags={**cfg.labels, "Name": f"{cfg.prefix}-default-closed"},
            opts=child,
        )
        self._flow_logs(name, cfg, settings, vpc, child)
        zones = aws.get_availability_zones_output(state="available")
        # Stable, computed from the VPC CIDR: /20s (for a /16) leave room for more tiers later.
        new_prefix = min(settings.vpc_cidr.prefixlen + 4, 28)
        blocks = list(settings.vpc_cidr.subnets(new_prefix=new_prefix))
        private_rt = aws.ec2.RouteTable(
            f"{name}-private",
            vpc_id=vpc.id,
            # No routes besides the implicit local one: nothing here reaches the internet.
            tags={**cfg.labels, "Name": f"{cfg.prefix}-private"},
            opts=child,
        )
        self.private_subnet_ids = []
        for index in range(_AZ_COUNT):
            subnet = aws.ec2.Subnet(
                f"{name}-private-{index}",
                vpc_id=vpc.id,
                cidr_block=str(blocks[index]),
                availability_zone=zones.names.apply(_nth(index)),
                map_public_ip_on_launch=False,  # FSBP EC2.15
                tags={**cfg.labels, "Name": f"{cfg.prefix}-private-{index}", "tier": "private"},
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
            tags={**cfg.labels, "Name": f"{cfg.prefix}-endpoints"},
            opts=child,
        )
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
        for service in _SSM_SERVICES:
            aws.ec2.VpcEndpoint(
                f"{name}-{service}",
                vpc_id=vpc.id,
                service_name=f"com.amazonaws.{settings.region}.{service}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,  # the agent resolves the regional name to these endpoints
                subnet_ids=self.private_subnet_ids,
                security_group_ids=[endpoint_sg.id],
                tags={**cfg.labels, "Name": f"{cfg.prefix}-{service}"},
                opts=child,
            )

        if cfg.bastion.mode is BastionMode.SSH:
            # ssh mode only: one public subnet for the bastion, routed to an internet gateway.
            igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=cfg.labels, opts=child)
            public_rt = aws.ec2.RouteTable(
                f"{name}-public",
                vpc_id=vpc.id,
                tags={**cfg.labels, "Name": f"{cfg.prefix}-public"},
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
                cidr_block=str(_last_block(settings.vpc_cidr, new_prefix)),
                availability_zone=zones.names.apply(_nth(0)),
                map_public_ip_on_launch=False,  # the bastion asks for its address explicitly (FSBP EC2.15)
                tags={**cfg.labels, "Name": f"{cfg.prefix}-public-0", "tier": "public"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-0", subnet_id=public.id, route_table_id=public_rt.id, opts=child
            )
            self.public_subnet_id = public.id


def _flow_logs_role_policy(log_group_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    "Resource": [log_group_arn, f"{log_group_arn}:*"],
                }
            ],
        }
    )


def _nth(index: int) -> Callable[[Sequence[str]], str]:
    def pick(names: Sequence[str]) -> str:
        return names[index]

    return pick


def _last_block(cidr: ipaddress.IPv4Network, new_prefix: int) -> ipaddress.IPv4Network:
    return list(cidr.subnets(new_prefix=new_prefix))[-1]
