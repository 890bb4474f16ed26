"""``local up --replicas N --pooler``: the flags parse, and a bad count is a usage error before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.cli import main


@pytest.mark.parametrize("count", ["9", "-1", "two"])
def test_local_up_refuses_a_bad_replica_count(count: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["local", "up", "--dir", str(tmp_path / "demo"), "--replicas", count, "--pooler"]) == 64
    assert f"{count!r} is not a replica count from 0 to 5" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()  # nothing started
