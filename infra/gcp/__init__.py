"""GCP: private Cloud SQL PostgreSQL 16, Secret Manager, and an IAP bastion (not yet built)."""

from __future__ import annotations

from infra.config import StackConfig
from infra.errors import ConfigError
from infra.program import ProgramOutputs

__all__ = ["deploy"]


def deploy(cfg: StackConfig, migrations: tuple[str, ...]) -> ProgramOutputs:
    raise ConfigError("cloud", "gcp", "aws (the GCP stack is not built yet)", "pulumi config set cloud aws")
