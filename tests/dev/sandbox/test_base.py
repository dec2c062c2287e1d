"""The sandbox's shared errors: a busy port is named with what to do."""

import pytest

from measure.dev.sandbox import PortInUseError, Sandbox
from tests.dev.sandbox.client import CONSUMER, PRIVATE


def test_busy_port_is_reported(sandbox):
    port = int(sandbox.url.rsplit(":", 1)[1])
    with pytest.raises(PortInUseError, match=f"port {port}"):
        Sandbox({CONSUMER: PRIVATE}).start(port=port)
