"""A local stand-in for the TUNE Measurement API: `python -m measure sandbox`.

One package by job: `faults` (what goes wrong, and how often), `api` (the Measurement API's state
and its answers to /serve), `http` (server and handler plumbing), `page` (the HTML page at
/_sandbox) and `cli` (the command line). `api`'s docstring says what the sandbox does; the names
below are what callers import from `measure.dev.sandbox`.
"""

from measure.dev.sandbox.api import (
    DEFAULT_DUPLICATE_WINDOW,
    DEFAULT_LOG_SIZE,
    REQUIRED_PARAMS,
    Sandbox,
)
from measure.dev.sandbox.base import (
    DUPLICATE_MESSAGE,
    OUTCOME_ACCEPTED,
    OUTCOME_DUPLICATE,
    OUTCOME_FAULT,
    OUTCOME_REJECTED,
    RESPONDER,
    RESPONDER_HEADER,
    PortInUseError,
    SandboxError,
)
from measure.dev.sandbox.cli import DEFAULT_PORT, build_parser, faults_from_args, main
from measure.dev.sandbox.faults import DEFAULT_HANG_S, OUTAGE_MODES, Faults, FaultsError
from measure.dev.sandbox.http import MAX_BODY, MAX_HEADER_LINE, MAX_HEADERS
from measure.dev.sandbox.page import PAGE_ROWS, mask_ip, render_page

__all__ = [
    "DEFAULT_DUPLICATE_WINDOW", "DEFAULT_HANG_S", "DEFAULT_LOG_SIZE", "DEFAULT_PORT", "DUPLICATE_MESSAGE",
    "MAX_BODY", "MAX_HEADERS", "MAX_HEADER_LINE", "OUTAGE_MODES", "OUTCOME_ACCEPTED", "OUTCOME_DUPLICATE",
    "OUTCOME_FAULT", "OUTCOME_REJECTED", "PAGE_ROWS", "REQUIRED_PARAMS", "RESPONDER", "RESPONDER_HEADER",
    "Faults", "FaultsError", "PortInUseError", "Sandbox", "SandboxError", "build_parser", "faults_from_args",
    "main", "mask_ip", "render_page",
]
