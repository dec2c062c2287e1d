"""The functions tests' `topology` is the in-memory Pub/Sub (tests/conftest.py), so their unit tests run
without Java; a test marked `emulator` (push subscriptions, the emulator's own behaviour) gets the
emulator's, as does any test that asks for `make_topology`."""

import pytest


@pytest.fixture
def topology(request):
    if request.node.get_closest_marker("emulator"):
        return request.getfixturevalue("make_topology")()
    return request.getfixturevalue("memory_topology")
