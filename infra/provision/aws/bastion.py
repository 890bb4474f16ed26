"""The bastion: a tiny instance reached through SSM Session Manager (no inbound port, no key,
no public address) or, in ssh mode, through OpenSSH from restricted CIDRs, forwarding only.

It patches itself: its first-boot user data points dnf at the Amazon Linux 2023 repositories in
S3 (reached through the VPC's S3 gateway endpoint, no NAT) and turns on ``dnf-automatic``.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.config import AwsSettings, BastionSettings, StackMeta
from infra.enums import BastionMode
from infra.provision.aws.iam import service_role
from infra.provision.sshd import forward_only_script

__all__ = ["AMI_PARAMETER", "INSTANCE_TYPE", "SSH_USER", "Bastion", "user_data"]

# Amazon Linux 2023 for arm64 (t4g): the SSM agent is preinstalled.
AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
INSTANCE_TYPE = "t4g.nano"
SSH_USER = "ec2-user"

# AL2023 locks dnf to the AMI's release; /etc/dnf/vars/releasever = latest makes `dnf upgrade` (and
# dnf-automatic, which otherwise never sees a new release) follow the newest one (AL2023 User Guide,
# "Using Deterministic upgrades through versioned repositories"). The guide advises pinned releases for
# fleets that test updates first; a jump host with no workload prefers security updates now.
# `$dualstack` empty: the mirror list then names the regional S3 endpoint, which the gateway endpoint
# serves (a field report shows the dualstack name timing out behind a gateway endpoint; verify with
# `dnf repolist -v`). dnf-automatic-install.timer applies every update daily; a kernel update takes
# effect at the next reboot or replacement.
_PATCHING = """\
printf '' > /etc/dnf/vars/dualstack
echo latest > /etc/dnf/vars/releasever
dnf -y upgrade || echo "bastion: first upgrade failed; dnf-automatic retries daily" >&2
dnf -y install dnf-automatic && systemctl enable --now dnf-automatic-install.timer"""


def user_data(ssh_forward_to: tuple[str, int] | None) -> str:
    """The first-boot script: in ssh mode sshd becomes forward-only first (before anything that may
    fail), then the patch path and the daily updates."""
    lines = ["#!/bin/bash", "set -euo pipefail"]
    if ssh_forward_to is not None:
        lines.append(forward_only_script(*ssh_forward_to))
    lines.append(_PATCHING)
    return "\n".join(lines) + "\n"


class Bastion(pulumi.ComponentResource):
    """The jump host for the post-deploy step."""

    instance: aws.ec2.Instance
    info: pulumi.Output[dict[str, str]]

    def __init__(
        self,
        name: str,
        meta: StackMeta,
        settings: AwsSettings,
        bastion: BastionSettings,
        *,
        subnet_id: pulumi.Input[str],
        security_group_id: pulumi.Input[str],
        kms_key_arn: pulumi.Input[str],
        db_host: pulumi.Output[str],
        db_port: int,
        needs: list[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("private-postgres:aws:Bastion", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        role = service_role(f"{name}-role", "ec2.amazonaws.com", meta, child)
        # Only what the SSM agent needs (FSBP SSM.1 / EC2 managed by Systems Manager); nothing else.
        aws.iam.RolePolicyAttachment(
            f"{name}-ssm",
            role=role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
            opts=child,
        )
        profile = aws.iam.InstanceProfile(f"{name}-profile", role=role.name, tags=meta.labels, opts=child)
        ami = aws.ssm.get_parameter_output(name=AMI_PARAMETER)
        ssh = bastion.mode is BastionMode.SSH
        key_name: pulumi.Output[str] | None = None
        script: pulumi.Input[str] = user_data(None)
        if ssh:
            assert bastion.ssh_public_key is not None  # config requires it in ssh mode
            key_name = aws.ec2.KeyPair(
                f"{name}-key", public_key=bastion.ssh_public_key, tags=meta.labels, opts=child
            ).key_name
            script = db_host.apply(lambda host: user_data((host, db_port)))
        self.instance = aws.ec2.Instance(
            f"{name}-instance",
            ami=ami.value,
            instance_type=INSTANCE_TYPE,
            subnet_id=subnet_id,
            vpc_security_group_ids=[security_group_id],
            iam_instance_profile=profile.name,
            associate_public_ip_address=ssh,  # ssm mode: no public address (FSBP EC2.9)
            key_name=key_name,  # ssm mode: no key pair at all
            user_data=script,
            # User data runs at first boot only: a changed script (a new database address in ssh
            # mode) replaces the bastion so the running one always has the script it was given.
            user_data_replace_on_change=True,
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
            tags={**meta.labels, "Name": f"{meta.prefix}-bastion"},
            opts=pulumi.ResourceOptions(
                parent=self,
                # The SSM agent registers at boot through the interface endpoints, and dnf needs the S3
                # gateway: boot only once they and the egress rules to them exist (else TargetNotConnected).
                depends_on=needs,
                # The AMI parameter moves with every AL2023 release: without this every preview would
                # plan a bastion replacement. dnf-automatic patches the running one in place.
                ignore_changes=["ami"],
            ),
        )
        region = settings.region
        if ssh:
            self.info = pulumi.Output.all(self.instance.id, self.instance.public_ip).apply(
                lambda v: {
                    "mode": BastionMode.SSH.value,
                    "target": v[0],
                    "region": region,
                    "host": v[1],
                    "user": SSH_USER,
                }
            )
        else:
            self.info = self.instance.id.apply(lambda i: {"mode": BastionMode.SSM.value, "target": i, "region": region})
        self.register_outputs({"instance_id": self.instance.id, "info": self.info})
