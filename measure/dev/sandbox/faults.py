"""The sandbox's fault model: what goes wrong with a /serve request, and how often."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Longer than any sensible client read timeout, so a "timeout" fault is one for the client.
DEFAULT_HANG_S = 30.0
OUTAGE_MODES = ("503", "drop")


class FaultsError(ValueError):
    """Fault settings that make no sense; the message names the setting."""


_FAULT_KEYS = (
    "latency_ms", "status", "timeout_rate", "hang_s", "drop_rate",
    "outage_start", "outage_end", "outage_for", "outage_mode", "seed",
)


@dataclass(frozen=True)
class Faults:
    """What goes wrong, and how often. Rates are probabilities per /serve request.

    One uniform draw per request picks at most one fault: drop, then each status code, then
    timeout, so the rates must add up to at most 1. During the outage window every request
    fails (503 or dropped, per `outage_mode`), whatever the draw.
    """

    latency_ms: float = 0.0
    status: Mapping[int, float] = field(default_factory=dict)
    timeout_rate: float = 0.0
    hang_s: float = DEFAULT_HANG_S
    drop_rate: float = 0.0
    outage_start: float | None = None
    outage_end: float | None = None
    outage_mode: str = "503"
    seed: int | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, now: float | None = None) -> Faults:
        """Faults from JSON-like settings (the body of POST /_sandbox/faults), validated.

        `status` maps codes (int or str) to rates; `outage_for` (seconds from `now`) is an
        alternative to `outage_start` + `outage_end` (Unix seconds).
        """
        if not isinstance(data, Mapping):
            raise FaultsError("fault settings must be a JSON object")
        unknown = sorted(set(data) - set(_FAULT_KEYS))
        if unknown:
            raise FaultsError(f"unknown fault setting {unknown[0]!r} (known: {', '.join(_FAULT_KEYS)})")
        now = time.time() if now is None else now
        status: dict[int, float] = {}
        raw_status = data.get("status") or {}
        if not isinstance(raw_status, Mapping):
            raise FaultsError('status must map codes to rates, e.g. {"500": 0.3, "429": 0.05}')
        for code, rate in raw_status.items():
            try:
                number = int(code)
            except (TypeError, ValueError):
                number = 0
            if not 400 <= number <= 599:
                raise FaultsError(f"status code {code!r} is not a 4xx or 5xx code")
            status[number] = _rate(f"status {number}", rate)
        outage_start = _optional_number(data, "outage_start")
        outage_end = _optional_number(data, "outage_end")
        outage_for = _optional_number(data, "outage_for")
        if outage_for is not None:
            if outage_start is not None or outage_end is not None:
                raise FaultsError("give outage_for or outage_start/outage_end, not both")
            if outage_for <= 0:
                raise FaultsError("outage_for must be a positive number of seconds")
            outage_start, outage_end = now, now + outage_for
        if (outage_start is None) != (outage_end is None):
            raise FaultsError("an outage needs both outage_start and outage_end")
        if outage_start is not None and outage_end is not None and outage_end <= outage_start:
            raise FaultsError("outage_end must be after outage_start")
        outage_mode = str(data.get("outage_mode", "503"))
        if outage_mode not in OUTAGE_MODES:
            raise FaultsError(f"outage_mode must be one of {', '.join(OUTAGE_MODES)}, not {outage_mode!r}")
        seed = data.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise FaultsError(f"seed must be a whole number, not {seed!r}")
        faults = cls(
            latency_ms=_number(data, "latency_ms", 0.0),
            status=status,
            timeout_rate=_rate("timeout_rate", data.get("timeout_rate", 0.0)),
            hang_s=_number(data, "hang_s", DEFAULT_HANG_S),
            drop_rate=_rate("drop_rate", data.get("drop_rate", 0.0)),
            outage_start=outage_start,
            outage_end=outage_end,
            outage_mode=outage_mode,
            seed=seed,
        )
        total = faults.drop_rate + sum(status.values()) + faults.timeout_rate
        if total > 1 + 1e-9:
            raise FaultsError(f"drop_rate, status rates and timeout_rate add up to {total:g}, more than 1")
        return faults

    def as_dict(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "status": {str(code): rate for code, rate in sorted(self.status.items())},
            "timeout_rate": self.timeout_rate,
            "hang_s": self.hang_s,
            "drop_rate": self.drop_rate,
            "outage_start": self.outage_start,
            "outage_end": self.outage_end,
            "outage_mode": self.outage_mode,
            "seed": self.seed,
        }

    def in_outage(self, now: float) -> bool:
        if self.outage_start is None or self.outage_end is None:
            return False
        return self.outage_start <= now < self.outage_end

    def draw(self, rng: random.Random, now: float) -> str | None:
        """The fault for one request: "outage", "drop", a status code, "timeout" or None."""
        # Always draw, so a seeded sequence does not shift when an outage starts or ends.
        u = rng.random()
        if self.in_outage(now):
            return "outage"
        if u < self.drop_rate:
            return "drop"
        u -= self.drop_rate
        for code, rate in sorted(self.status.items()):
            if u < rate:
                return str(code)
            u -= rate
        return "timeout" if u < self.timeout_rate else None

    def describe(self) -> str:
        parts = []
        if self.latency_ms:
            parts.append(f"latency {self.latency_ms:g} ms")
        parts += [f"{code} at {rate:g}" for code, rate in sorted(self.status.items()) if rate]
        if self.timeout_rate:
            parts.append(f"timeout at {self.timeout_rate:g} (hang {self.hang_s:g} s)")
        if self.drop_rate:
            parts.append(f"drop at {self.drop_rate:g}")
        if self.outage_start is not None and self.outage_end is not None:
            start, end = (f"{datetime.fromtimestamp(t, UTC):%H:%M:%S}" for t in (self.outage_start, self.outage_end))
            parts.append(f"outage {start}–{end} UTC ({self.outage_mode})")
        if self.seed is not None:
            parts.append(f"seed {self.seed}")
        return ", ".join(parts) or "none"


def _number(data: Mapping[str, Any], key: str, default: float) -> float:
    value = data.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise FaultsError(f"{key} must be a number of at least 0, not {value!r}")
    return float(value)


def _optional_number(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FaultsError(f"{key} must be a number (Unix seconds), not {value!r}")
    return float(value)


def _rate(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise FaultsError(f"{name} must be a rate between 0 and 1, not {value!r}")
    return float(value)
