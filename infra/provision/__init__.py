"""Stage 1, provisioning: the Pulumi program that declares the network, the database and the bastion.

Owns :mod:`~infra.provision.program` (validated config in, the stack-output contract out), one
subpackage per cloud (:mod:`~infra.provision.aws`, :mod:`~infra.provision.gcp`, file for file the
same concerns), the generated passwords, the optional in-up migrate command
(:mod:`~infra.provision.migrate_step`) and the offline synthesis for reviewers
(:mod:`~infra.provision.synth` with the project's Pulumi mocks, :mod:`~infra.provision.mocks`).

Imports only the shared vocabulary (config, contract, errors, enums, paths) and the migration
engine's file reader (for the migrations manifest the preview shows). Nothing is imported here:
``python -m infra`` must start without loading the Pulumi SDK.
"""

from __future__ import annotations

__all__ = ["build", "main"]


def __getattr__(name: str) -> object:
    # the public entry points, loaded on first use (the CLI imports this package for `synth`)
    if name in __all__:
        from infra.provision import program

        return getattr(program, name)
    raise AttributeError(name)
