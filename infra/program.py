"""The Pulumi program: validated config in, resources declared, the stack-output contract out.

``__main__.py`` calls :func:`main`; ``synth`` and the unit tests call :func:`build` under the
project mocks. Config is validated (``infra.config``) before any resource is declared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pulumi

from infra import config as config_module
from infra.config import StackConfig
from infra.contract import OUTPUT_NAMES
from infra.enums import Cloud
from infra.migrations.source import manifest

__all__ = ["MIGRATIONS_DIR", "ProgramOutputs", "build", "main"]

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "schema" / "migrations"


@dataclass(frozen=True)
class ProgramOutputs:
    """The stack outputs as the program produces them (Outputs); field names = the contract's."""

    cloud: str
    environment: str
    db_host: pulumi.Input[str]
    db_port: pulumi.Input[int]
    db_name: pulumi.Input[str]
    db_admin_user: pulumi.Input[str]
    db_admin_secret: pulumi.Input[str]
    db_user_secrets: pulumi.Input[Mapping[str, pulumi.Input[str]]]
    bastion: pulumi.Input[Mapping[str, pulumi.Input[str]]]
    db_ca: pulumi.Input[str]
    migrations: tuple[str, ...]

    def as_exports(self) -> dict[str, pulumi.Input[Any]]:
        exports = {f.name: getattr(self, f.name) for f in fields(self)}
        exports["migrations"] = list(self.migrations)
        return exports


assert tuple(f.name for f in fields(ProgramOutputs)) == OUTPUT_NAMES, "ProgramOutputs must mirror StackOutputs"


def build(cfg: StackConfig | None = None, migrations_dir: Path = MIGRATIONS_DIR) -> dict[str, pulumi.Input[Any]]:
    """Declare the stack for ``cfg`` (read from Pulumi config when None); return the outputs."""
    cfg = cfg if cfg is not None else config_module.from_pulumi()
    migrations = manifest(migrations_dir) if migrations_dir.is_dir() else ()
    if cfg.cloud is Cloud.AWS:
        from infra import aws

        outputs = aws.deploy(cfg, migrations)
    else:
        from infra import gcp

        outputs = gcp.deploy(cfg, migrations)
    exports = outputs.as_exports()
    if cfg.run_migrations_on_up:
        from infra.postdeploy import migration_command

        # The command reads the outputs it depends on, so it runs after the database, the
        # bastion and the stored user secrets exist (their Outputs carry those dependencies).
        migration_command(pulumi.get_stack(), migrations, outputs=exports, depends_on=[])
    return exports


def main() -> None:
    """Entry point of ``pulumi up`` / ``pulumi preview``."""
    for name, value in build().items():
        pulumi.export(name, value)
