"""Shared fixtures: one Pub/Sub emulator per run, fresh topics per test, real function servers.

- `pubsub_emulator` (session): starts the emulator once (about 2.5 s) and points
  PUBSUB_EMULATOR_HOST / GOOGLE_CLOUD_PROJECT of this process at it; stops its whole process
  group at the end. If it cannot start, every test that needs it errors with the reason and
  the emulator's log: it never skips.
- `topology` (function): measure's topics and subscriptions with a unique suffix, plus a tap
  subscription on the events topic, so a test sees only its own messages. The MEASURE_*_TOPIC
  variables of this process point at them for the test. `make_topology(push_endpoint=...)`
  makes more (e.g. with a push subscription).
- `memory_pubsub` (session) and `memory_topology` (function): the same topology on
  measure.dev.memorypubsub, an in-memory Pub/Sub over REST that needs no Java; the process's
  PUBSUB_EMULATOR_HOST / GOOGLE_CLOUD_PROJECT point at it for the test. tests/functions and
  tests/pipeline answer `topology` with it (their conftest.py); `make_topology` is always the emulator.
- `function_server(target, env, signature_type)`: a real `functions-framework` server on
  main.py (or `source=`), returns its URL; its log is attached to the report of a failing test.

Tests that use the emulator are marked `emulator` automatically.
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import pytest

from measure.dev.devstack import MAIN_PY, SERVER_START_TIMEOUT
from measure.dev.devstack import function_server as start_function_server
from measure.dev.emulator import Emulator, Names, create_topology, free_port, log_tail
from measure.dev.memorypubsub import MemoryPubsub
from measure.dev.memorypubsub import create_topology as create_memory_topology

__all__ = ["free_port"]

_suffixes = itertools.count(1)


def pytest_collection_modifyitems(items):
    for item in items:
        if "pubsub_emulator" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.emulator)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    # The logs of the servers a failing test started are what explain the failure.
    if report.failed:
        for name, path in getattr(item, "measure_logs", ()):
            report.sections.append((f"{name} log ({path})", log_tail(Path(path), 60)))
    return report


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory):
    emulator = Emulator.start(log_path=tmp_path_factory.mktemp("pubsub") / "emulator.log")
    saved = {name: os.environ.get(name) for name in emulator.env()}
    os.environ.update(emulator.env())
    try:
        yield emulator
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        emulator.stop()


@pytest.fixture
def make_topology(pubsub_emulator, monkeypatch):
    def make(push_endpoint: str | None = None, *, tap: bool = True):
        names = Names().suffixed(f"-t{next(_suffixes)}")
        topology = create_topology(pubsub_emulator.project, emulator_host=pubsub_emulator.host,
                                   push_endpoint=push_endpoint, names=names, tap=tap)
        for name, value in names.env().items():
            monkeypatch.setenv(name, value)
        return topology

    return make


@pytest.fixture
def topology(make_topology):
    return make_topology()


@pytest.fixture(scope="session")
def memory_pubsub():
    with MemoryPubsub().start() as pubsub:
        yield pubsub


@pytest.fixture
def memory_topology(memory_pubsub, monkeypatch):
    topology = create_memory_topology(memory_pubsub, names=Names().suffixed(f"-m{next(_suffixes)}"), tap=True)
    for name, value in topology.env().items():
        monkeypatch.setenv(name, value)
    return topology


@pytest.fixture
def function_server(request, tmp_path):
    """`function_server(target, env, signature_type="http", source=MAIN_PY) -> url`; the server
    runs with this process's environment plus `env` and is stopped (whole group) after the test."""
    started = []
    request.node.measure_logs = []

    def start(target: str, env: dict[str, str] | None = None, signature_type: str = "http",
              source: Path = MAIN_PY) -> str:
        log_path = tmp_path / f"{target}-{len(started)}.log"
        request.node.measure_logs.append((target, log_path))
        service = start_function_server(target, port=free_port(), env=env or {}, log_path=log_path,
                                        signature_type=signature_type, source=Path(source))
        started.append(service)
        service.wait_ready(time.monotonic() + SERVER_START_TIMEOUT)
        return service.url

    yield start
    for service in started:
        service.stop()
