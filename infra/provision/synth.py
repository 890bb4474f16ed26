"""``python -m infra synth``: the resource graph for reviewers, offline (no CLI, no cloud, no state).

It reads ``Pulumi.<stack>.yaml``, applies ``--set`` overrides, evaluates the program under the
project's own mocks (``infra.provision.mocks``) and prints every resource with its inputs and options, then
the stack outputs. Secrets print as ``[secret]``, values only known after apply as
``(known after apply)``. Two runs print the same bytes. ``--diff BASE_REF`` prints instead what
changed since a git ref, resource by resource (:mod:`infra.provision.diff`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from infra.config import NAMESPACE
from infra.errors import ConfigError
from infra.paths import PROJECT_DIR

if TYPE_CHECKING:
    from infra.provision.recording import Synthesis

__all__ = ["load_stack_config", "register", "render_json", "render_text", "run_synth"]

MASK = "[secret]"
AFTER_APPLY = "(known after apply)"


def load_stack_config(stack: str, overrides: Mapping[str, str] = {}, root: Path = PROJECT_DIR) -> dict[str, str]:
    """Fully-qualified config of ``Pulumi.<stack>.yaml`` plus overrides, as the engine passes it."""
    path = root / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise ConfigError("--stack", stack, f"a stack with a Pulumi.{stack}.yaml file", f"pulumi stack init {stack}")
    document = yaml.safe_load(path.read_text()) or {}
    values: dict[str, str] = {}
    for key, value in (document.get("config") or {}).items():
        full = key if ":" in key else f"{NAMESPACE}:{key}"
        if isinstance(value, Mapping) and "secure" in value:
            values[full] = MASK  # an encrypted value: synth never decrypts
        elif isinstance(value, list | dict):
            values[full] = json.dumps(value)  # structured config reaches programs as JSON text
        elif isinstance(value, bool):
            values[full] = "true" if value else "false"
        else:
            values[full] = str(value)
    for key, value in overrides.items():
        values[key if ":" in key else f"{NAMESPACE}:{key}"] = value
    return values


def run_synth(stack: str, overrides: Mapping[str, str] = {}, *, preview: bool = False) -> Synthesis:
    # Imported here: the mocks pull in the Pulumi SDK, which every other command can do without.
    from infra.provision.program import build
    from infra.provision.recording import synthesize

    config = load_stack_config(stack, overrides)
    return synthesize(build, config, project=NAMESPACE, stack=stack, preview=preview)


def _mask(value: Any) -> Any:
    from infra.provision.recording import UNKNOWN, is_secret

    if is_secret(value):
        return MASK
    if value == UNKNOWN:
        return AFTER_APPLY
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # protobuf carries every number as a double
    return value


def render_json(result: Synthesis) -> dict[str, Any]:
    resources = []
    # Registration order depends on the event loop; the graph is printed in a stable order.
    for res in sorted(result.resources, key=lambda r: (r.name, r.type)):
        options = {
            "protect": res.protect,
            "ignore_changes": list(res.ignore_changes),
            "additional_secret_outputs": list(res.additional_secret_outputs),
            "depends_on": sorted({d.rsplit("::", 1)[-1] for d in res.dependencies}),
            "parent": res.parent.rsplit("::", 1)[-1] if res.parent else None,
        }
        resources.append(
            {
                "type": res.type,
                "name": res.name,
                "inputs": _mask(dict(res.inputs)),
                "options": {k: v for k, v in options.items() if v},
            }
        )
    outputs = {
        name: (MASK if name in result.secret_outputs else _mask(value))
        for name, value in sorted(result.outputs.items())
    }
    return {"resources": resources, "outputs": outputs}


def render_text(result: Synthesis) -> str:
    doc = render_json(result)
    lines: list[str] = []
    for res in doc["resources"]:
        lines.append(f"+ {res['type']}  {res['name']}")
        for key, value in sorted(res["inputs"].items()):
            lines.append(f"    {key}: {json.dumps(value, sort_keys=True)}")
        for key, value in sorted(res["options"].items()):
            lines.append(f"    [{key}] {json.dumps(value, sort_keys=True)}")
    lines.append("")
    lines.append(f"{len(doc['resources'])} resources")
    lines.append("Outputs:")
    for name, value in doc["outputs"].items():
        lines.append(f"    {name}: {json.dumps(value, sort_keys=True)}")
    return "\n".join(lines)


def _handle_diff(args: argparse.Namespace) -> int:
    from infra.provision.diff import synth_diff

    if args.set or args.preview:
        raise ConfigError(
            "--diff", args.diff, "without --set or --preview", "compare committed config: commit it first"
        )
    diff = synth_diff(args.diff, args.stack)
    if args.markdown is not None:
        args.markdown.write_text(diff.render_markdown())
    print(json.dumps(diff.to_json(), indent=2, sort_keys=True) if args.json else diff.render_text())
    return 0


def _handle(args: argparse.Namespace) -> int:
    if args.diff is not None:
        return _handle_diff(args)
    overrides: dict[str, str] = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError("--set", item, "key=value", "python -m infra synth --set environment=production")
        overrides[key.strip()] = value
    result = run_synth(args.stack, overrides, preview=args.preview)
    if args.json:
        print(json.dumps(render_json(result), indent=2, sort_keys=True))
    else:
        print(render_text(result))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="print the resource graph offline (project mocks: no Pulumi CLI, no cloud)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stack", default="dev", help="reads Pulumi.<stack>.yaml (default: dev)")
    parser.add_argument("--preview", action="store_true", help="evaluate as a preview (computed values unknown)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--diff",
        metavar="BASE_REF",
        help="instead, the resource-level diff from git BASE_REF to the working tree (infra/provision/diff.py)",
    )
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="--diff: also write the diff as markdown")
    parser.set_defaults(handler=_handle)
