"""Importers: another migration tool's history as this engine's files (``python -m infra import``).

:func:`import_history` (module :mod:`.convert`) does the work; one reader per tool says what that
tool runs and in which order (:mod:`.dbmate`, :mod:`.golang_migrate` with ory's popx, :mod:`.diesel`,
:mod:`.flyway`); :mod:`.model` holds the values and the mapping file ``baseline --from-ledger`` reads.
"""

from __future__ import annotations

from infra.migrations.importers.convert import FORMATS, ImportResult, import_history
from infra.migrations.importers.model import MAP_FILE, ImportMap, ImportRefused, MappedMigration

__all__ = ["FORMATS", "MAP_FILE", "ImportMap", "ImportRefused", "ImportResult", "MappedMigration", "import_history"]
