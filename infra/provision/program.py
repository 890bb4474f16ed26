"""The Pulumi program: validated config in, resources declared, the stack-output contract out.

``__main__.py`` calls :func:`main`; ``synth`` and the unit tests call :func:`build` under the
project mocks. Config is validated (``infra.config``) before any resource is declared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi

from infra import config as config_module
from infra.config import AwsSettings, GcpSettings, StackConfig
from infra.migrations.source import manifest
from infra.paths import MIGRATIONS_DIR

__all__ = ["build", "main"]


def build(cfg: StackConfig | None = None, migrations_dir: Path = MIGRATIONS_DIR) -> dict[str, pulumi.Input[Any]]:
    """Declare the stack for ``cfg`` (read from Pulumi config when None); return the outputs."""
    cfg = cfg if cfg is not None else config_module.from_pulumi()
    migrations = manifest(migrations_dir) if migrations_dir.is_dir() else ()
    match cfg.settings:
        case AwsSettings() as aws_settings:
            from infra.provision import aws

            outputs = aws.deploy(cfg, aws_settings, migrations)
        case GcpSettings() as gcp_settings:
            from infra.provision import gcp

            outputs = gcp.deploy(cfg, gcp_settings, migrations)
    exports = outputs.as_exports()
    if cfg.run_migrations_on_up:
        from infra.provision.migrate_step import migration_command

        # The command reads the outputs it depends on, so it runs after the database, the
        # bastion and the stored user secrets exist (their Outputs carry those dependencies).
        migration_command(pulumi.get_stack(), migrations, outputs=exports, depends_on=[])
    return exports


def main() -> None:
    """Entry point of ``pulumi up`` / ``pulumi preview``."""
    for name, value in build().items():
        pulumi.export(name, value)
