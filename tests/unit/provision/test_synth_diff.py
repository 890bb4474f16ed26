"""``synth --diff``: the resource-level diff between two synthesized graphs, and the git path to a base ref."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from infra.errors import InfraError
from infra.paths import PROJECT_DIR
from infra.provision.diff import diff_graphs, synth_diff
from infra.provision.synth import render_json, run_synth


def test_a_config_change_is_one_update_naming_the_property() -> None:
    base = render_json(run_synth("dev"))
    head = render_json(run_synth("dev", {"backupRetentionDays": "14", "environment": "production"}))
    diff = diff_graphs("dev", base, head, base_name="base", head_name="head")
    rds = next(r for r in diff.resources if r.type == "aws:rds/instance:Instance")
    changed = {p.path: (p.before, p.after) for p in rds.properties}
    assert changed["backupRetentionPeriod"] == (30, 14)
    assert changed["deletionProtection"] == (False, True)
    assert changed["[protect]"] == (None, True)  # options are compared too
    assert diff.counts()["delete"] == 0
    assert "~ aws:rds/instance:Instance  private-postgres-dev-db-instance" in diff.render_text()
    assert "    backupRetentionPeriod: 30 → 14" in diff.render_text()
    assert diff_graphs("dev", base, base, base_name="a", head_name="a").empty


def test_added_and_deleted_resources() -> None:
    base = {"resources": [{"type": "t:a", "name": "gone", "inputs": {"x": 1}}], "outputs": {"o": 1}}
    head = {"resources": [{"type": "t:a", "name": "new", "inputs": {"x": {"y": [1, 2]}}}], "outputs": {"o": 2}}
    diff = diff_graphs("s", base, head, base_name="b", head_name="h")
    assert [(r.name, r.change) for r in diff.resources] == [("gone", "delete"), ("new", "add")]
    assert [(p.path, p.after) for p in diff.resources[1].properties] == [("x.y", [1, 2])]
    assert [(p.path, p.before, p.after) for p in diff.outputs] == [("o", 1, 2)]
    assert diff.to_json()["counts"] == {"add": 1, "update": 0, "delete": 1}
    assert diff.render_markdown().startswith("**Offline resource diff**")


def test_diff_against_a_git_ref_synthesizes_that_commit(tmp_path: Path) -> None:
    """A clone at this branch's HEAD, its stack file edited in the working tree: the diff from HEAD
    shows exactly that edit, synthesized from the committed code in a temporary copy."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--shared", str(PROJECT_DIR), str(clone)], check=True)
    stack_file = clone / "Pulumi.dev.yaml"
    stack_file.write_text(stack_file.read_text() + "  private-postgres:backupRetentionDays: 14\n")
    diff = synth_diff("HEAD", "dev", repo=clone)
    assert [(r.type, r.change) for r in diff.resources] == [("aws:rds/instance:Instance", "update")]
    assert [(p.path, p.before, p.after) for p in diff.resources[0].properties] == [("backupRetentionPeriod", 30, 14)]


def test_an_unknown_ref_is_one_clear_error() -> None:
    with pytest.raises(InfraError, match=r"git archive 'no-such-ref' failed: .*fix: name a commit"):
        synth_diff("no-such-ref", "dev")


def test_the_synth_child_gets_no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import json
    import subprocess as sp

    from infra.provision import diff

    seen: dict[str, str] = {}

    def fake_run(argv: list[str], **kwargs: object) -> sp.CompletedProcess[str]:
        env = kwargs["env"]
        assert isinstance(env, dict)
        seen.update(env)
        return sp.CompletedProcess(argv, 0, json.dumps({"resources": [], "outputs": {}}), "")

    monkeypatch.setenv("PULUMI_ACCESS_TOKEN", "pul-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    monkeypatch.setattr(sp, "run", fake_run)  # diff.py calls subprocess.run
    assert diff.synth_dir(tmp_path, "dev") == {"resources": [], "outputs": {}}
    assert seen["PYTHONPATH"] == str(tmp_path)
    assert "PULUMI_ACCESS_TOKEN" not in seen
    assert "AWS_SECRET_ACCESS_KEY" not in seen
