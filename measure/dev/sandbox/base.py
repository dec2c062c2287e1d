"""What every part of the sandbox names: its errors, its answers' responder header and the
outcomes its request log records."""

from __future__ import annotations

RESPONDER_HEADER = "X-MAT-Responder"
RESPONDER = "sandbox"
DUPLICATE_MESSAGE = "Duplicate request detected."
OUTCOME_ACCEPTED = "accepted"
OUTCOME_DUPLICATE = "duplicate"
OUTCOME_REJECTED = "rejected"
OUTCOME_FAULT = "fault"


class SandboxError(Exception):
    """The sandbox cannot do what was asked."""


class PortInUseError(SandboxError):
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        super().__init__(
            f"port {port} on {host} is already in use: stop whatever listens there "
            f"(e.g. `lsof -i :{port}`) or choose another with --port"
        )
