"""The manual workflow runs the same make target as a person, with OIDC credentials only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]


def _workflow() -> dict[Any, Any]:
    document = yaml.safe_load((ROOT / ".github/workflows/cloud-acceptance.yml").read_text())
    assert isinstance(document, dict)
    return document


def test_it_is_started_by_hand_with_oidc_and_no_stored_cloud_keys() -> None:
    workflow = _workflow()
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert list(triggers) == ["workflow_dispatch"]
    assert workflow["permissions"] == {"contents": "read", "id-token": "write"}
    steps = workflow["jobs"]["acceptance"]["steps"]
    uses = {s.get("uses", "").split("@")[0] for s in steps}
    assert {"aws-actions/configure-aws-credentials", "google-github-actions/auth"} <= uses
    text = (ROOT / ".github/workflows/cloud-acceptance.yml").read_text()
    assert "AWS_SECRET_ACCESS_KEY" not in text
    assert "credentials_json" not in text


def test_it_runs_the_make_targets_people_run() -> None:
    runs = [s.get("run", "") for s in _workflow()["jobs"]["acceptance"]["steps"]]
    assert 'make cloud-acceptance STACK="${{ inputs.stack }}"' in runs
    assert 'make teardown STACK="${{ inputs.stack }}"' in runs
    makefile = (ROOT / "Makefile").read_text()
    assert "$(PY) -m infra acceptance --stack $(STACK) --confirm $(STACK)" in makefile
    assert "$(PY) -m infra teardown --stack $(STACK) --confirm $(STACK)" in makefile
