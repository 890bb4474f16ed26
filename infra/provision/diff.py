"""``python -m infra synth --diff BASE_REF``: what a change does to the resource graph, with no cloud access.

For a reviewer without credentials: the program is synthesized twice under the project's mocks,
once as it is at ``BASE_REF`` (``git archive`` of that commit into a temporary directory, then
``python -m infra synth --json`` run there, with that commit's own code and stack files) and once
in the working tree, and the two graphs are compared resource by resource: added, deleted, and
changed with every input and option path that differs (``settings.ipConfiguration.sslMode``,
``[protect]``), then the stack outputs. Secrets stay ``[secret]``: both sides are ``synth``'s
masked JSON. What the cloud provider would replace rather than update is not known offline; a
real ``pulumi preview`` says that.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from infra.errors import InfraError
from infra.paths import PROJECT_DIR

__all__ = ["GraphDiff", "PropertyChange", "ResourceChange", "diff_graphs", "synth_at_ref", "synth_diff", "synth_dir"]

Change = Literal["add", "delete", "update"]
_CHILD_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "VIRTUAL_ENV")
_MARK: dict[Change, str] = {"add": "+", "delete": "-", "update": "~"}


@dataclass(frozen=True)
class PropertyChange:
    """One input (dotted path) or option (``[name]``) that differs; ``None`` where it is not set."""

    path: str
    before: Any
    after: Any


@dataclass(frozen=True)
class ResourceChange:
    type: str
    name: str
    change: Change
    properties: tuple[PropertyChange, ...] = ()


@dataclass(frozen=True)
class GraphDiff:
    """The difference between two synthesized graphs of one stack."""

    stack: str
    base: str
    head: str
    resources: tuple[ResourceChange, ...]
    outputs: tuple[PropertyChange, ...]

    def counts(self) -> dict[str, int]:
        return {change: sum(1 for r in self.resources if r.change == change) for change in ("add", "update", "delete")}

    @property
    def empty(self) -> bool:
        return not self.resources and not self.outputs

    def to_json(self) -> dict[str, object]:
        return {
            "stack": self.stack,
            "base": self.base,
            "head": self.head,
            "counts": self.counts(),
            "resources": [
                {
                    "type": r.type,
                    "name": r.name,
                    "change": r.change,
                    "properties": [{"path": p.path, "before": p.before, "after": p.after} for p in r.properties],
                }
                for r in self.resources
            ],
            "outputs": [{"name": p.path, "before": p.before, "after": p.after} for p in self.outputs],
        }

    def summary(self) -> str:
        counts = self.counts()
        return (
            f"stack {self.stack}, {self.base} → {self.head}: {counts['add']} to add, {counts['update']} to change, "
            f"{counts['delete']} to delete, {len(self.outputs)} output(s) changed"
        )

    def render_text(self) -> str:
        lines = [self.summary()]
        for res in self.resources:
            lines.append(f"{_MARK[res.change]} {res.type}  {res.name}")
            if res.change == "add":
                lines += [f"    {p.path}: {_show(p.after)}" for p in res.properties]
            else:
                lines += [f"    {p.path}: {_show(p.before)} → {_show(p.after)}" for p in res.properties]
        if self.outputs:
            lines.append("Outputs:")
            lines += [f"  ~ {p.path}: {_show(p.before)} → {_show(p.after)}" for p in self.outputs]
        if self.empty:
            lines.append("no resource changes")
        return "\n".join(lines)

    def render_markdown(self) -> str:
        body = self.render_text().split("\n", 1)[1] if not self.empty else "no resource changes"
        fence = "````" if "```" in body else "```"
        return f"**Offline resource diff** ({self.summary()})\n\n{fence}diff\n{body}\n{fence}\n"


def _show(value: Any) -> str:
    return "(not set)" if value is None else json.dumps(value, sort_keys=True)


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list) and value and any(isinstance(v, Mapping | list) for v in value):
        for index, item in enumerate(value):
            _flatten(item, f"{prefix}[{index}]", out)
    elif prefix:
        out[prefix] = value


def _properties(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[PropertyChange, ...]:
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    _flatten(before.get("inputs", {}), "", old)
    _flatten(after.get("inputs", {}), "", new)
    for key, value in before.get("options", {}).items():
        old[f"[{key}]"] = value
    for key, value in after.get("options", {}).items():
        new[f"[{key}]"] = value
    return tuple(
        PropertyChange(path, old.get(path), new.get(path))
        for path in sorted(set(old) | set(new))
        if old.get(path) != new.get(path)
    )


def diff_graphs(
    stack: str, base: Mapping[str, Any], head: Mapping[str, Any], *, base_name: str, head_name: str
) -> GraphDiff:
    """Compare two ``synth --json`` documents of one stack."""
    old = {(r["type"], r["name"]): r for r in base.get("resources", [])}
    new = {(r["type"], r["name"]): r for r in head.get("resources", [])}
    changes: list[ResourceChange] = []
    for key in sorted(set(old) | set(new), key=lambda k: (k[1], k[0])):
        if key not in old:
            changes.append(ResourceChange(key[0], key[1], "add", _properties({}, new[key])))
        elif key not in new:
            changes.append(ResourceChange(key[0], key[1], "delete"))
        else:
            props = _properties(old[key], new[key])
            if props:
                changes.append(ResourceChange(key[0], key[1], "update", props))
    before_out: Mapping[str, Any] = base.get("outputs", {})
    after_out: Mapping[str, Any] = head.get("outputs", {})
    outputs = tuple(
        PropertyChange(name, before_out.get(name), after_out.get(name))
        for name in sorted(set(before_out) | set(after_out))
        if before_out.get(name) != after_out.get(name)
    )
    return GraphDiff(stack, base_name, head_name, tuple(changes), outputs)


def synth_dir(directory: Path, stack: str) -> dict[str, Any]:
    """``python -m infra synth --stack STACK --json`` run with the code and stack files of ``directory``."""
    # synth needs no credentials: the child sees the locale, PATH and its own code, never the
    # tokens a CI job holds (PULUMI_ACCESS_TOKEN, cloud credentials)
    env = {k: v for k, v in os.environ.items() if k in _CHILD_ENV}
    env["PYTHONPATH"] = str(directory)
    result = subprocess.run(
        [sys.executable, "-m", "infra", "synth", "--stack", stack, "--json"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise InfraError(f"synth --stack {stack} failed in {directory}: {tail[:300]}")
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def synth_at_ref(ref: str, stack: str, repo: Path = PROJECT_DIR) -> dict[str, Any]:
    """The graph as it is at git ``ref`` (committed files only), synthesized in a temporary copy."""
    archive = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", ref], capture_output=True, check=False)
    if archive.returncode != 0:
        reason = archive.stderr.decode(errors="replace").strip().splitlines()
        raise InfraError(
            f"git archive {ref!r} failed: {(reason or ['no detail'])[-1][:200]}; "
            "fix: name a commit, branch or tag of this repository (in CI: fetch the base branch first)"
        )
    with tempfile.TemporaryDirectory(prefix="synth-base-") as work:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(work, filter="data")  # refuses absolute paths and links out of the tree
        return synth_dir(Path(work), stack)


def synth_diff(base_ref: str, stack: str, *, repo: Path = PROJECT_DIR, head: Path | None = None) -> GraphDiff:
    """The resource-level diff from ``base_ref`` to the working tree ``head`` (default: ``repo``)."""
    before = synth_at_ref(base_ref, stack, repo)
    after = synth_dir(head or repo, stack)
    return diff_graphs(stack, before, after, base_name=base_ref, head_name="working tree")
