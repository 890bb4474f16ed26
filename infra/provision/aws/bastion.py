"""The bastion: a tiny instance reached through SSM Session Manager (no inbound port, no key,
no public address) or, in ssh mode, through OpenSSH from restricted CIDRs."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.config import StackConfig
from infra.enums import BastionMode
from infra.provision.aws.iam import service_role

__all__ = ["Bastion"]

# Amazon Linux 2023 for arm64 (t4g): the SSM agent is preinstalled.
AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
INSTANCE_TYPE = "t4g.nano"
SSH_USER = "ec2-user"


class Bastion(pulumi.ComponentResource):
    """The jump host for the post-deploy step."""

    instance: aws.ec2.Instance
    info: pulumi.Output[dict[str, str]]

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        *,
        subnet_id: pulumi.Input[str],
        security_group_id: pulumi.Input[str],
        kms_key_arn: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("private-postgres:aws:Bastion", name, None, opts)
        assert cfg.aws is not None
        child = pulumi.ResourceOptions(parent=self)
        role = service_role(f"{name}-role", "ec2.amazonaws.com", cfg, child)
        # Only what the SSM agent needs (FSBP SSM.1 / EC2 managed by Systems Manager); nothing else.
        aws.iam.RolePolicyAttachment(
            f"{name}-ssm",
            role=role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
            opts=child,
        )
        profile = aws.iam.InstanceProfile(f"{name}-profile", role=role.name, tags=cfg.labels, opts=child)
        ami = aws.ssm.get_parameter_output(name=AMI_PARAMETER)
        ssh = cfg.bastion.mode is BastionMode.SSH
        key_name: pulumi.Output[str] | None = None
        if ssh:
            assert cfg.bastion.ssh_public_key is not None
            key_name = aws.ec2.KeyPair(
                f"{name}-key", public_key=cfg.bastion.ssh_public_key, tags=cfg.labels, opts=child
            ).key_name
        self.instance = aws.ec2.Instance(
            f"{name}-instance",
            ami=ami.value,
            instance_type=INSTANCE_TYPE,
            subnet_id=subnet_id,
            vpc_security_group_ids=[security_group_id],
            iam_instance_profile=profile.name,
            associate_public_ip_address=ssh,  # ssm mode: no public address (FSBP EC2.9)
            key_name=key_name,  # ssm mode: no key pair at all
            metadata_options=aws.ec2.InstanceMetadataOptionsArgs(
                http_endpoint="enabled",
                http_tokens="required",  # IMDSv2 only (FSBP EC2.8)
                http_put_response_hop_limit=1,
            ),
            root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
                encrypted=True,  # FSBP EC2.3 (EBS encryption)
                kms_key_id=kms_key_arn,
                volume_type="gp3",
                volume_size=8,
                delete_on_termination=True,
            ),
            monitoring=False,  # detailed (1-minute) CloudWatch metrics: a cost an idle jump host does not need
            tags={**cfg.labels, "Name": f"{cfg.prefix}-bastion"},
            opts=pulumi.ResourceOptions(
                parent=self,
                # The AMI parameter moves with every AL2023 release: without this every preview
                # would plan a bastion replacement. Patch in place (dnf) or replace on purpose.
                ignore_changes=["ami"],
            ),
        )
        region = cfg.aws.region
        if ssh:
            self.info = pulumi.Output.all(self.instance.id, self.instance.public_ip).apply(
                lambda v: {"mode": "ssh", "target": v[0], "region": region, "host": v[1], "user": SSH_USER}
            )
        else:
            self.info = self.instance.id.apply(lambda i: {"mode": "ssm", "target": i, "region": region})
        self.register_outputs({"instance_id": self.instance.id, "info": self.info})
