"""Stack configuration, shared vocabulary: the only package that reads ``pulumi.Config``.

:data:`KEYS` is the config surface (``keys``); ``Pulumi.yaml`` declares the same keys and a unit
test keeps the two equal. :func:`load` (``loader``) turns raw values into the frozen settings of
``settings`` before any resource is declared; ``checks`` holds the pure value checks (ASCII
integers, CIDR address space, SSH keys) that the policy pack mirrors. A bad value raises
:class:`~infra.errors.ConfigError` naming the key, the value, what is allowed and the
``pulumi config set`` that fixes it.
"""

from __future__ import annotations

from infra.config.keys import KEYS, NAMESPACE, KeySpec
from infra.config.loader import from_pulumi, load
from infra.config.settings import (
    AwsSettings,
    BastionSettings,
    CloudSettings,
    DatabaseSettings,
    GcpSettings,
    PoolerMode,
    ScaleSettings,
    StackConfig,
    StackMeta,
)

__all__ = [
    "KEYS",
    "NAMESPACE",
    "AwsSettings",
    "BastionSettings",
    "CloudSettings",
    "DatabaseSettings",
    "GcpSettings",
    "KeySpec",
    "PoolerMode",
    "ScaleSettings",
    "StackConfig",
    "StackMeta",
    "from_pulumi",
    "load",
]
