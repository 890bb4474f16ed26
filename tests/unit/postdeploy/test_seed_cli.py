"""``seed`` / ``reset --stack`` refuse a production stack from its outputs, before any secret or tunnel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import infra.postdeploy.stack
from infra.cli import main
from infra.errors import ExitCode

OUTPUTS = Path(__file__).resolve().parents[2] / "fixtures" / "outputs" / "aws-dev.json"


@pytest.fixture
def production_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    doc = json.loads(OUTPUTS.read_text())
    doc["environment"] = "production"
    path = tmp_path / "prod.json"
    path.write_text(json.dumps(doc))

    def no_tunnel(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a production refusal must not open a tunnel or read a secret")

    monkeypatch.setattr(infra.postdeploy.stack, "stack_connection", no_tunnel)
    return path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["seed"], "refusing to seed stack 'prod': its environment is production"),
        (["reset", "--confirm", "prod"], "refusing to reset stack 'prod': its environment is production"),
    ],
)
def test_production_stack_is_refused_before_connecting(
    production_outputs: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main([*argv, "--stack", "prod", "--outputs-file", str(production_outputs)]) == 1
    assert message in capsys.readouterr().err


def test_reset_requires_confirm(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reset", "--dbname", "app"]) == ExitCode.USAGE
    assert "--confirm" in capsys.readouterr().err
