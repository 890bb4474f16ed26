"""Run the program under the project mocks and record what it declares, for ``synth`` and the tests.

:class:`RecordingMonitor` records every registration with its resource options (protect,
ignore_changes, depends_on, ...), which ``Mocks.new_resource`` alone never sees;
:func:`synthesize` runs a program under :class:`~infra.provision.mocks.ProjectMocks` on a fresh
event loop and returns a :class:`Synthesis`: the recorded resources and the awaited outputs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.sync_await import _sync_await

from infra.provision.mocks import ProjectMocks

__all__ = [
    "SECRET_KEY",
    "UNKNOWN",
    "RecordedResource",
    "RecordingMonitor",
    "Synthesis",
    "is_secret",
    "plain",
    "synthesize",
]

UNKNOWN = rpc.UNKNOWN
SECRET_KEY = rpc._special_sig_key
_SECRET_SIG = rpc._special_secret_sig


def is_secret(value: object) -> bool:
    """True when ``value`` is a recorded (serialized) Pulumi secret."""
    return isinstance(value, dict) and value.get(SECRET_KEY) == _SECRET_SIG


def plain(value: Any) -> Any:
    """A recorded value with secret wrappers removed (for assertions on the value itself)."""
    if is_secret(value):
        return plain(value.get("value"))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


@dataclass(frozen=True)
class RecordedResource:
    """One registered resource: inputs as serialized (secrets wrapped, unknowns as UNKNOWN)."""

    type: str
    name: str
    inputs: Mapping[str, Any]
    protect: bool
    parent: str
    dependencies: tuple[str, ...]
    ignore_changes: tuple[str, ...]
    additional_secret_outputs: tuple[str, ...]
    delete_before_replace: bool
    retain_on_delete: bool
    replace_on_changes: tuple[str, ...]
    custom: bool
    urn: str
    id: str = ""  # the id the mocks gave it ("" in preview, and for components)

    def input(self, path: str) -> Any:
        """A nested input by dotted path (``settings.ipConfiguration.ipv4Enabled``), secrets unwrapped."""
        value: Any = plain(dict(self.inputs))
        for part in path.split("."):
            if isinstance(value, list):
                value = value[int(part)]
            elif isinstance(value, dict):
                value = value.get(part)
            else:
                return None
        return value


@dataclass
class Synthesis:
    """What a run registered, in order, and the resolved stack outputs."""

    resources: list[RecordedResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: frozenset[str] = frozenset()

    def of_type(self, type_: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str) -> RecordedResource:
        found = self.of_type(type_)
        if len(found) != 1:
            raise AssertionError(f"expected one {type_}, found {[r.name for r in found]}")
        return found[0]

    def named(self, name: str, type_: str | None = None) -> RecordedResource:
        """The one resource called ``name`` (of ``type_``: several types can share a name)."""
        found = [r for r in self.resources if r.name == name and type_ in (None, r.type)]
        if len(found) != 1:
            raise AssertionError(f"expected one resource named {name!r}, found {len(found)}")
        return found[0]


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A MockMonitor that records each registration with its resource options."""

    def __init__(self, mocks: ProjectMocks) -> None:
        super().__init__(mocks)
        self.mocks: ProjectMocks = mocks
        self.recorded: list[RecordedResource] = []
        # The SDK calls the monitor from executor threads and gives each its own event loop;
        # nothing closes those, so we do (after the run), or they leak sockets.
        self.thread_loops: set[asyncio.AbstractEventLoop] = set()

    def _remember_loop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.thread_loops.add(asyncio.get_event_loop())

    def close_thread_loops(self) -> None:
        for loop in self.thread_loops:
            if not loop.is_running() and not loop.is_closed():
                loop.close()
        self.thread_loops.clear()

    def Invoke(self, request: Any) -> Any:
        try:
            return super().Invoke(request)  # type: ignore[no-untyped-call]
        finally:
            self._remember_loop()

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        self._remember_loop()
        if request.type != "pulumi:pulumi:Stack":
            self.recorded.append(
                RecordedResource(
                    type=request.type,
                    name=request.name,
                    inputs=json_format.MessageToDict(request.object),
                    protect=bool(request.protect),
                    parent=request.parent,
                    dependencies=tuple(request.dependencies),
                    ignore_changes=tuple(request.ignoreChanges),
                    additional_secret_outputs=tuple(request.additionalSecretOutputs),
                    delete_before_replace=bool(request.deleteBeforeReplace),
                    retain_on_delete=bool(request.retainOnDelete),
                    replace_on_changes=tuple(request.replaceOnChanges),
                    custom=bool(request.custom),
                    urn=response.urn,
                    id=response.id,
                )
            )
        return response


def synthesize(
    program: Callable[[], Mapping[str, pulumi.Input[Any]]],
    config: Mapping[str, str],
    *,
    project: str = "private-postgres",
    stack: str = "dev",
    preview: bool = False,
    monitor: RecordingMonitor | None = None,
) -> Synthesis:
    """Run ``program`` under the project mocks with ``config``; return what it registered and exported.

    ``program`` declares resources and returns the stack outputs (name -> Output). Errors raised
    by the program (e.g. ConfigError) propagate unchanged; pass your own ``monitor`` to inspect
    what was registered before such an error.
    """
    from pulumi.runtime import settings
    from pulumi.runtime.config import set_all_config

    loop = asyncio.new_event_loop()  # a fresh loop per run: no state leaks between runs
    asyncio.set_event_loop(loop)
    try:
        set_all_config(dict(config))
        if monitor is None:
            mocks = ProjectMocks(
                preview=preview,
                region=config.get("aws:region", "eu-west-1"),
                project=config.get("gcp:project", "my-project-123"),
            )
            monitor = RecordingMonitor(mocks)
        pulumi.runtime.set_mocks(monitor.mocks, project=project, stack=stack, preview=preview, monitor=monitor)
        result = Synthesis()

        async def resolve(outputs: Mapping[str, pulumi.Input[Any]]) -> None:
            secret: set[str] = set()
            for name, value in outputs.items():
                out = pulumi.Output.from_input(value)
                known = await out.is_known()
                if await out.is_secret():
                    secret.add(name)
                result.outputs[name] = await out.future() if known else UNKNOWN
            result.secret_outputs = frozenset(secret)

        def body() -> None:
            outputs = program()
            _sync_await(resolve(outputs))

        # A run that raised (bad config, a failed apply) leaves its RPCs and output tasks behind,
        # bound to its closed loop: forget them, or the next run waits on them.
        settings.SETTINGS.rpc_manager.clear()
        with settings.SETTINGS.lock:
            settings.SETTINGS.outputs.clear()
        _sync_await(pulumi.runtime.stack.run_pulumi_func(body))
        result.resources = list(monitor.recorded)
        return result
    finally:
        set_all_config({})
        asyncio.set_event_loop(None)
        loop.close()
        if monitor is not None:
            monitor.close_thread_loops()
