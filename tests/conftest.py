"""Test configuration: fixture plugins and the CI rule that a missing tool is a failure, not a skip."""

from __future__ import annotations

pytest_plugins = [
    "tests.fixtures.pg",
    "tests.fixtures.schema",
    "tests.fixtures.sshd",
    "tests.fixtures.netns",
    "tests.fixtures.proxy",
    "tests.fixtures.migrations",
]
