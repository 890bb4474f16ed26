"""Importers: another migration tool's history as this engine's files (``python -m infra import``).

:func:`import_history` (module :mod:`.convert`) does the work; one reader per tool says what that
tool runs and in which order (:mod:`.dbmate`, :mod:`.golang_migrate` with ory's popx, :mod:`.diesel`,
:mod:`.flyway`); :mod:`.model` holds the values and the mapping file ``baseline --from-ledger`` reads.

The names below are loaded on first use (PEP 562): the engine registers ``import`` beside its
other verbs with :data:`FORMATS` alone, so ``python -m infra migrate`` does not load the readers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from infra.migrations.importers.convert import ImportResult, import_history
    from infra.migrations.importers.model import MAP_FILE, ImportMap, ImportRefused, MappedMigration

__all__ = ["FORMATS", "MAP_FILE", "ImportMap", "ImportRefused", "ImportResult", "MappedMigration", "import_history"]

#: The tools ``import --from`` reads, one reader module each.
FORMATS = ("golang-migrate", "dbmate", "diesel", "flyway")

_LAZY = {
    "ImportResult": "convert",
    "import_history": "convert",
    "MAP_FILE": "model",
    "ImportMap": "model",
    "ImportRefused": "model",
    "MappedMigration": "model",
}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
