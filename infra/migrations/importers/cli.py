"""``python -m infra import --from TOOL SRC DEST``: argument parsing and printing only (no database)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from infra.errors import ExitCode
from infra.migrations.importers import FORMATS

__all__ = ["register"]


def run_import(ns: argparse.Namespace) -> int:
    from infra.migrations.importers import MAP_FILE, import_history

    result = import_history(
        ns.tool,
        ns.source,
        ns.destination,
        renumber=ns.renumber,
        allow_missing_down=ns.allow_missing_down,
        dialect=ns.dialect,
    )
    if ns.json:
        print(json.dumps(dataclasses.asdict(result.mapping), indent=2, sort_keys=True))
        return ExitCode.OK
    changed = [m for m in result.mapping.migrations if m.notes]
    for mig in changed:
        print(f"{mig.file} <- {', '.join(mig.sources)}: {'; '.join(mig.notes)}")
    if result.mapping.skipped:
        print(f"not migrations for {ns.tool} (ignored, as it ignores them): {', '.join(result.mapping.skipped)}")
    print(
        f"imported {len(result.files)} migration(s) from {ns.tool} into {result.destination} "
        f"({len(changed)} with notes); mapping: {result.destination / MAP_FILE}"
    )
    return ExitCode.OK


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "import",
        help="write another tool's migration history in this engine's format (no database)",
        description="Import a golang-migrate (or popx), dbmate, diesel or Flyway history: order kept, names "
        "normalised, no-transaction settings carried over, and a mapping file for baseline --from-ledger.",
    )
    p.add_argument("--from", dest="tool", required=True, choices=FORMATS, help="the source tool")
    p.add_argument("source", type=Path, metavar="SRC", help="the tool's migrations directory")
    p.add_argument("destination", type=Path, metavar="DEST", help="a new (or empty) directory for the files")
    p.add_argument("--renumber", action="store_true", help="number the files 0001.. in the tool's order")
    p.add_argument("--allow-missing-down", action="store_true", help="import an up without a down as irreversible")
    p.add_argument("--dialect", default="postgres", help="popx: the dialect whose files to take (postgres)")
    p.add_argument("--json", action="store_true", help="print the mapping as JSON")
    p.set_defaults(handler=run_import)
