"""The enumerations shared by config, contract and commands."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["BastionMode", "Cloud", "Edition", "Environment"]


class Cloud(StrEnum):
    AWS = "aws"
    GCP = "gcp"


class Environment(StrEnum):
    DEV = "dev"
    STAGING = "staging"
    PRODUCTION = "production"


class BastionMode(StrEnum):
    SSM = "ssm"  # AWS Systems Manager port forwarding: no inbound port, no SSH key
    IAP = "iap"  # GCP Identity-Aware Proxy TCP forwarding + OS Login
    SSH = "ssh"  # plain OpenSSH to a bastion with a public address, restricted CIDRs


class Edition(StrEnum):
    """Cloud SQL edition: custom and shared-core tiers are ENTERPRISE; db-perf-optimized-N-* tiers ENTERPRISE_PLUS."""

    ENTERPRISE = "ENTERPRISE"
    ENTERPRISE_PLUS = "ENTERPRISE_PLUS"
