"""The post-deploy step inside ``pulumi up``: a ``local.Command`` that runs ``python -m infra migrate``.

Declared only when ``runMigrationsOnUp`` is true. It imports nothing from the post-deploy stage:
it runs it as a separate process, handing over the outputs through ``$INFRA_STACK_OUTPUTS``.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from infra.contract import OUTPUTS_ENV
from infra.paths import PROJECT_DIR, project_python_in

if TYPE_CHECKING:
    import pulumi
    import pulumi_command

__all__ = ["migration_command"]


def migration_command(
    stack_name: str,
    manifest: Sequence[str],
    outputs: pulumi.Input[Mapping[str, Any]],
    depends_on: Sequence[pulumi.Resource],
    *,
    python: str | None = None,
) -> pulumi_command.local.Command:
    """A ``local.Command`` that runs ``python -m infra migrate --stack <name>`` during ``pulumi up``.

    ``triggers`` are the sorted ``"<file>:<sha256>"`` entries of schema/migrations, so
    ``pulumi preview`` shows exactly which files changed and the command reruns only then.
    The outputs reach the command through ``$INFRA_STACK_OUTPUTS`` (the stack's own outputs are
    written only when the update ends). stdout/stderr are secret outputs and not logged: they
    hold endpoint names and role actions. There is no delete step: removing the resource (or
    turning ``runMigrationsOnUp`` off) must never touch the database.
    """
    import pulumi
    import pulumi_command

    interpreter = python or project_python_in(PROJECT_DIR)
    argv = (interpreter, "-m", "infra", "migrate", "--stack", stack_name, "--json")
    create = " ".join(shlex.quote(part) for part in argv)
    return pulumi_command.local.Command(
        "post-deploy-migrations",
        create=create,
        # a changed trigger replaces the resource, i.e. reruns `create`; update is the same command
        update=create,
        triggers=sorted(manifest),
        # no `dir`: the command runs in the project directory, where pulumi runs; an absolute
        # path here would differ between machines and show a diff on every other checkout
        environment={OUTPUTS_ENV: pulumi.Output.json_dumps(outputs)},
        logging=pulumi_command.local.Logging.NONE,
        opts=pulumi.ResourceOptions(
            depends_on=list(depends_on),
            additional_secret_outputs=["stdout", "stderr"],
        ),
    )
