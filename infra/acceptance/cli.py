"""``python -m infra acceptance --stack S --confirm S`` and ``python -m infra teardown --stack S --confirm S``.

Both need the Pulumi CLI logged in to the stack's backend and the cloud's credentials (GCP also
``gcloud``, for the peering fallback); both refuse a production stack.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from infra.acceptance.driver import StepResult, acceptance, subprocess_runner, target_of, teardown
from infra.errors import ExitCode

__all__ = ["AcceptanceArgs", "register", "render"]


@dataclass(frozen=True)
class AcceptanceArgs:
    stack: str
    confirm: str | None
    keep_on_failure: bool
    json: bool

    @classmethod
    def parse(cls, args: argparse.Namespace) -> AcceptanceArgs:
        return cls(args.stack, args.confirm, bool(args.keep_on_failure), bool(args.json))


def render(results: Sequence[StepResult], *, as_json: bool) -> str:
    if as_json:
        return json.dumps({"steps": [{**asdict(r), "seconds": round(r.seconds, 1)} for r in results]}, indent=2)
    lines = [
        f"{'ok ' if r.ok else 'FAILED'} {r.name:<15} {r.seconds:7.1f}s  {' '.join(r.argv)}"
        + ("  (cleanup)" if r.cleanup else "")
        for r in results
    ]
    return "\n".join(lines)


def _acceptance(args: argparse.Namespace) -> int:
    parsed = AcceptanceArgs.parse(args)
    results = acceptance(
        target_of(parsed.stack), subprocess_runner(), confirm=parsed.confirm, keep_on_failure=parsed.keep_on_failure
    )
    print(render(results, as_json=parsed.json))
    return ExitCode.OK


def _teardown(args: argparse.Namespace) -> int:
    parsed = AcceptanceArgs.parse(args)
    results = teardown(target_of(parsed.stack), subprocess_runner(), confirm=parsed.confirm)
    print(render(results, as_json=parsed.json))
    return ExitCode.OK


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = subparsers.add_parser(
        "acceptance",
        help="deploy, migrate, check drift and a quiet preview, destroy, deploy and migrate again, destroy",
        description="The cloud acceptance run (needs the Pulumi CLI and cloud credentials; never production).",
    )
    down = subparsers.add_parser(
        "teardown",
        help="pulumi destroy, finishing what GCP leaves (the service networking peering)",
        description="pulumi destroy for a non-production stack; on GCP, deletes a leftover peering and retries.",
    )
    for parser in (run, down):
        parser.add_argument("--stack", required=True, help="the stack (Pulumi.<stack>.yaml)")
        parser.add_argument("--confirm", metavar="STACK", help="the stack's name again: this destroys it")
        parser.add_argument("--json", action="store_true", help="the steps as JSON on stdout")
    run.add_argument("--keep-on-failure", action="store_true", help="leave the stack deployed when a step fails")
    run.set_defaults(handler=_acceptance)
    down.set_defaults(handler=_teardown, keep_on_failure=False)
