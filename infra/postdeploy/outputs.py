"""Read a stack's outputs (the contract) through the Pulumi Automation API or the Pulumi CLI.

:func:`read_outputs` tries ``pulumi.automation`` (``select_stack`` + ``outputs()``) first and falls
back to ``pulumi stack output --json --show-secrets``; both need the Pulumi CLI and a login
to the stack's backend. :func:`load_outputs_file` reads a document written by that same
command (``--outputs-file``), for pipelines that pass outputs between jobs.

Everything ends in :meth:`StackOutputs.parse`, which names the output that is missing or
malformed. The raw document holds secret values (``--show-secrets``), so it is never logged.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

from infra.contract import StackOutputs
from infra.errors import AutomationError, ContractError
from infra.paths import PROJECT_DIR

__all__ = ["PROJECT_DIR", "load_outputs_file", "parse_document", "read_outputs"]

_log = logging.getLogger(__name__)

#: The Pulumi project (Pulumi.yaml) this package belongs to.

_MASKED = "[secret]"  # what `pulumi stack output --json` prints for a secret without --show-secrets

#: ``(stack, work_dir) -> {name: value}``; swapped in tests.
Reader = Callable[[str, Path], Mapping[str, object]]


def parse_document(text: str, source: str) -> StackOutputs:
    """Parse a ``pulumi stack output --json --show-secrets`` document."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ContractError(
            f"{source} is not JSON (line {exc.lineno}); expected `pulumi stack output --json`"
        ) from None
    if not isinstance(doc, dict):
        raise ContractError(f"{source} must be a JSON object of stack outputs, got {type(doc).__name__}")
    return _parse(doc, source)


def _parse(doc: Mapping[str, object], source: str) -> StackOutputs:
    masked = sorted(name for name, value in doc.items() if _has_mask(value))
    if masked:
        raise ContractError(
            f"stack output {masked[0]!r} from {source} is masked as [secret]; "
            "read it with `pulumi stack output --json --show-secrets`"
        )
    return StackOutputs.parse(doc)


def _has_mask(value: object) -> bool:
    if isinstance(value, str):
        return value == _MASKED
    if isinstance(value, Mapping):
        return any(_has_mask(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_mask(v) for v in value)
    return False


def load_outputs_file(path: Path) -> StackOutputs:
    """Outputs recorded with ``pulumi stack output --json --show-secrets > file``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ContractError(f"cannot read outputs file {str(path)!r}: {exc.strerror}") from None
    return parse_document(text, str(path))


def automation_reader(stack: str, work_dir: Path) -> Mapping[str, object]:
    """Outputs through the Automation API (``LocalWorkspace`` on the project directory)."""
    from pulumi import automation as auto

    try:
        selected = auto.select_stack(stack_name=stack, work_dir=str(work_dir))
        outputs = selected.outputs()
    except auto.errors.StackNotFoundError:
        raise AutomationError(f"stack {stack!r} not found; check `pulumi stack ls` and the backend login") from None
    except auto.errors.CommandError as exc:
        raise AutomationError(f"pulumi could not read stack {stack!r}: {_first_line(str(exc))}") from None
    return {name: item.value for name, item in outputs.items()}


def cli_reader(stack: str, work_dir: Path) -> Mapping[str, object]:
    """Outputs through ``pulumi stack output --json --show-secrets`` (the value never reaches a log)."""
    if shutil.which("pulumi") is None:
        raise AutomationError(
            "'pulumi' not found on PATH; install the Pulumi CLI (https://www.pulumi.com/docs/install/)"
        )
    result = subprocess.run(
        ["pulumi", "stack", "output", "--json", "--show-secrets", "--stack", stack, "--non-interactive"],
        cwd=work_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise AutomationError(f"`pulumi stack output` failed for stack {stack!r}: {_first_line(result.stderr)}")
    doc = json.loads(result.stdout or "{}")
    if not isinstance(doc, dict):
        raise ContractError(f"`pulumi stack output --json` for {stack!r} did not return an object")
    return doc


def read_outputs(
    stack: str,
    work_dir: Path = PROJECT_DIR,
    *,
    readers: tuple[Reader, ...] = (automation_reader, cli_reader),
) -> StackOutputs:
    """The validated outputs of ``stack``; the first reader that works wins.

    Raises AutomationError when no reader could reach the stack (the last reader's reason),
    ContractError when an output is missing or malformed.
    """
    failure: AutomationError | None = None
    for reader in readers:
        try:
            doc = reader(stack, work_dir)
        except (AutomationError, ImportError, FileNotFoundError) as exc:
            _log.info("reading outputs with %s failed: %s", reader.__name__, exc)
            failure = exc if isinstance(exc, AutomationError) else AutomationError(str(exc))
            continue
        return _parse(doc, f"stack {stack!r}")
    assert failure is not None
    raise failure


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and "password" not in ln.lower()]
    return (lines[-1] if lines else "no detail")[:300]
