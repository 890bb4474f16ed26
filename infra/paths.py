"""Where the project's own files are: the one place that knows the repository layout.

Shared vocabulary (imports no stage). Each stage finds the bundled migrations, the seed data,
the demo's state directory and the project root here instead of counting ``parents[N]`` from
its own location, so moving a module never moves what it reads.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["DEMO_DIR", "MIGRATIONS_DIR", "PROJECT_DIR", "SEED_DIR", "project_python", "project_python_in"]

#: The repository root: where ``Pulumi.yaml`` is and where ``pulumi`` runs the program.
PROJECT_DIR = Path(__file__).resolve().parents[1]
#: The bundled plain-SQL migrations.
MIGRATIONS_DIR = PROJECT_DIR / "schema" / "migrations"
#: Development-only seed data.
SEED_DIR = PROJECT_DIR / "schema" / "seed"
#: The local demo's state (``python -m infra local up``).
DEMO_DIR = PROJECT_DIR / ".local" / "demo"


def project_python_in(project_dir: Path) -> str:
    """The running interpreter, relative to the project when it is the project's virtualenv.

    ``pulumi up`` runs the program with the project's virtualenv; naming it relatively
    (``.venv/bin/python``) keeps the command's input the same on every machine, so a second
    preview elsewhere shows no diff. An interpreter outside the project is named absolutely.
    """
    try:
        venv = Path(sys.prefix).resolve().relative_to(project_dir.resolve())
    except ValueError:
        return sys.executable
    return str(venv / "bin" / "python")


def project_python() -> str:
    """How to run this project's interpreter from the project directory (for printed hints)."""
    return project_python_in(PROJECT_DIR)
