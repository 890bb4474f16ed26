"""A real history (procrastinate, from PyPI at test time) laid out as golang-migrate, diesel and Flyway
would hold it: each imports to 38 files in procrastinate's order with its SQL intact.
(tests/integration/migrations/test_import_histories.py applies imported histories to PostgreSQL 16.)"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from infra.migrations.importers import import_history
from tests.fixtures.corpora import procrastinate_as, procrastinate_files


@pytest.mark.parametrize("tool", ["golang-migrate", "diesel", "flyway"])
def test_procrastinate_imports_from_each_layout_with_its_sql_intact(
    corpora: Callable[[str], Path], tmp_path: Path, tool: str
) -> None:
    originals = procrastinate_files(corpora("procrastinate"))
    procrastinate_as(tool, corpora("procrastinate"), tmp_path / tool)
    result = import_history(tool, tmp_path / tool, tmp_path / "ours")
    assert len(result.files) == len(originals) == 38
    assert [m.order for m in result.mapping.migrations] == list(range(1, 39))
    for original, mapped in zip(originals, result.mapping.migrations, strict=True):
        text = (tmp_path / "ours" / mapped.file).read_text()
        up = text.split("-- migrate:up\n", 1)[1].split("\n-- migrate:down", 1)[0]
        assert up.strip() == original.read_text().strip(), mapped.file
        assert mapped.up_transaction
