"""Test configuration: the fixture plugins, and the rule that ties tests/integration to real servers.

The plugins mark the tests that use their fixtures (``integration``, ``netns``); a test under
``tests/integration`` that ends up unmarked uses no real server and belongs in ``tests/unit``.
A missing tool skips locally and fails in CI (``tests/fixtures/requirements.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.pg",
    "tests.fixtures.schema",
    "tests.fixtures.sshd",
    "tests.fixtures.netns",
    "tests.fixtures.proxy",
    "tests.fixtures.migrations",
    "tests.fixtures.scratch",
    "tests.fixtures.corpora",
    "tests.fixtures.demo",
    "tests.fixtures.drift",
    "tests.fixtures.corpus",
    "tests.fixtures.scale",
]

_INTEGRATION = Path(__file__).parent / "integration"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    misplaced = [
        item.nodeid
        for item in items
        if item.path.is_relative_to(_INTEGRATION) and item.get_closest_marker("integration") is None
    ]
    if misplaced:
        raise pytest.UsageError(
            "tests under tests/integration that use no real server (move them to tests/unit): " + ", ".join(misplaced)
        )
