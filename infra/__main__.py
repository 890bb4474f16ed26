"""``python -m infra``: the only place that calls ``sys.exit``."""

from __future__ import annotations

import sys

from infra.cli import main

if __name__ == "__main__":
    sys.exit(main())
