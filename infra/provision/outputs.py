"""The stack outputs as the program produces them: Pulumi Outputs, one field per contract name.

Each cloud's ``deploy`` returns a :class:`ProgramOutputs`; :func:`infra.provision.program.build`
exports it. The field names are checked against :data:`infra.contract.OUTPUT_NAMES` at import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import pulumi

from infra.contract import OUTPUT_NAMES

__all__ = ["ProgramOutputs"]


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
    # what restore-drill needs to put a point-in-time copy beside the database (contract: DbInstance)
    db_instance: pulumi.Input[Mapping[str, Any]]
    # Scale-out: ``{"host", "port"[, "ca"]}`` per read replica, and the pooler's (None: no pooler).
    db_read_endpoints: pulumi.Input[Sequence[pulumi.Input[Mapping[str, pulumi.Input[Any]]]]] = ()
    db_pooler: pulumi.Input[Mapping[str, pulumi.Input[Any]]] | None = None

    def as_exports(self) -> dict[str, pulumi.Input[Any]]:
        exports = {f.name: getattr(self, f.name) for f in fields(self)}
        exports["migrations"] = list(self.migrations)
        if isinstance(self.db_read_endpoints, tuple):
            exports["db_read_endpoints"] = list(self.db_read_endpoints)
        return exports


assert tuple(f.name for f in fields(ProgramOutputs)) == OUTPUT_NAMES, "ProgramOutputs must mirror StackOutputs"
