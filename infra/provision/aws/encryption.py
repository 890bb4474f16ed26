"""The customer-managed KMS key that encrypts the database, its snapshots, its admin secret,
Performance Insights and the generated user secrets."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.config import StackConfig

__all__ = ["DataKey"]


class DataKey(pulumi.ComponentResource):
    """One KMS key with rotation on (FSBP KMS.4), used for everything the stack stores."""

    key: aws.kms.Key

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("private-postgres:aws:DataKey", name, None, opts)
        self.key = aws.kms.Key(
            f"{name}-key",
            description=f"{cfg.prefix}: RDS storage, snapshots, secrets, Performance Insights",
            enable_key_rotation=True,  # FSBP KMS.4
            deletion_window_in_days=30,  # the longest window: a scheduled deletion can still be cancelled
            tags=cfg.labels,
            opts=pulumi.ResourceOptions(parent=self, protect=cfg.production),
        )
        aws.kms.Alias(
            f"{name}-alias",
            name=f"alias/{cfg.prefix}-data",
            target_key_id=self.key.key_id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"key_arn": self.key.arn})
