"""Stage 2, post-deploy: from a deployed stack's outputs to a migrated, verified database.

outputs → secrets → tunnel (ssm | iap | ssh) → bootstrap → backup → migrate → verify → report.

Owns reading the stack outputs (:mod:`~infra.postdeploy.outputs`, :mod:`~infra.postdeploy.stack`),
the cloud secret stores (:mod:`~infra.postdeploy.secrets`), the tunnels
(:mod:`~infra.postdeploy.tunnel`), the CA bundle for verify-full (:mod:`~infra.postdeploy.ca`),
the login-role bootstrap, the pre-migration cloud backup (:mod:`~infra.postdeploy.backup`), the
orchestration (:mod:`~infra.postdeploy.run`), the read/write and isolation checks
(:mod:`~infra.postdeploy.verify`), development seed data and the guarded reset
(:mod:`~infra.postdeploy.seed`), and the commands ``migrate --stack``, ``tunnel``, ``seed``, ``reset``.

Imports the shared vocabulary and the migration engine; never the provisioning program, the
local demo or drift. Nothing is imported here, so a command loads only what it uses.
"""

from __future__ import annotations

__all__: list[str] = []
