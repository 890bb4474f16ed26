"""The customer-managed KMS key that encrypts the database, its snapshots, its admin secret,
Performance Insights, the generated user secrets and the CloudWatch log groups."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from infra.config import AwsSettings, StackMeta

__all__ = ["DataKey"]


class DataKey(pulumi.ComponentResource):
    """One KMS key with rotation on (FSBP KMS.4), used for everything the stack stores."""

    key: aws.kms.Key

    def __init__(
        self, name: str, meta: StackMeta, settings: AwsSettings, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("private-postgres:aws:DataKey", name, None, opts)
        account = aws.get_caller_identity_output().account_id
        partition = aws.get_partition_output().partition
        region = settings.region
        self.key = aws.kms.Key(
            f"{name}-key",
            description=f"{meta.prefix}: RDS storage, snapshots, secrets, Performance Insights, log groups",
            enable_key_rotation=True,  # FSBP KMS.4
            deletion_window_in_days=30,  # the longest window: a scheduled deletion can still be cancelled
            policy=pulumi.Output.all(partition, account).apply(lambda v: _key_policy(v[0], v[1], region)),
            tags=meta.labels,
            opts=pulumi.ResourceOptions(parent=self, protect=meta.production),
        )
        aws.kms.Alias(
            f"{name}-alias",
            name=f"alias/{meta.prefix}-data",
            target_key_id=self.key.key_id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"key_arn": self.key.arn})


def _key_policy(partition: str, account: str, region: str) -> str:
    """The default key policy (the account's IAM policies decide) plus CloudWatch Logs for this account's groups.

    A log group with ``kms_key_id`` is created only if the Logs service may use the key, and only
    for log groups of this account and region (the encryption-context condition). Source: CloudWatch
    Logs User Guide, "Encrypt log data in CloudWatch Logs using AWS KMS" (key policy example; verify).
    """
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AccountIamPoliciesDecide",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "CloudWatchLogsEncryptsThisAccountsGroups",
                    "Effect": "Allow",
                    "Principal": {"Service": f"logs.{region}.amazonaws.com"},
                    "Action": [
                        "kms:Encrypt*",
                        "kms:Decrypt*",
                        "kms:ReEncrypt*",
                        "kms:GenerateDataKey*",
                        "kms:Describe*",
                    ],
                    "Resource": "*",
                    "Condition": {
                        "ArnLike": {
                            "kms:EncryptionContext:aws:logs:arn": f"arn:{partition}:logs:{region}:{account}:log-group:*"
                        }
                    },
                },
            ],
        },
        sort_keys=True,
    )
