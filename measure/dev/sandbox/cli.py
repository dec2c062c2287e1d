"""`python -m measure sandbox`: the sandbox from the command line, serving until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

from measure.dev.sandbox.api import DEFAULT_DUPLICATE_WINDOW, DEFAULT_LOG_SIZE, Sandbox
from measure.dev.sandbox.base import PortInUseError
from measure.dev.sandbox.faults import DEFAULT_HANG_S, OUTAGE_MODES, Faults, FaultsError
from measure.ops.resolution import DefinitionsError, load_definitions
from measure.tune import signing

DEFAULT_PORT = 8090


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="measure sandbox",
        description="Run a local stand-in for the TUNE Measurement API (/serve), with faults on demand.",
        epilog="Inspect it at http://HOST:PORT/_sandbox (HTML) and /_sandbox/requests, /_sandbox/stats (JSON); "
        "change faults at runtime with POST/DELETE /_sandbox/faults.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free)")
    parser.add_argument("--consumer-key", default=os.environ.get("MEASURE_CONSUMER_KEY"),
                        help="accepted mat-consumer-key (default $MEASURE_CONSUMER_KEY)")
    parser.add_argument("--private-key", default=os.environ.get("MEASURE_PRIVATE_KEY"),
                        help="its private key (default $MEASURE_PRIVATE_KEY; prefer the variable: flags show in ps)")
    parser.add_argument("--advertiser-id", default=os.environ.get("MEASURE_ADVERTISER_ID"),
                        help="reject other advertiser_id values (default $MEASURE_ADVERTISER_ID; unset = any)")
    parser.add_argument("--tolerance", type=float, default=signing.DEFAULT_TOLERANCE,
                        help=f"allowed mat-timestamp skew in seconds (default {signing.DEFAULT_TOLERANCE})")
    parser.add_argument("--duplicate-window", type=float, default=DEFAULT_DUPLICATE_WINDOW,
                        help="seconds a transaction_id counts as a duplicate "
                             f"(default {DEFAULT_DUPLICATE_WINDOW:.0f}, MEASURE_RETRY_MAX_AGE's default)")
    parser.add_argument("--log-size", type=int, default=DEFAULT_LOG_SIZE,
                        help=f"requests kept for inspection (default {DEFAULT_LOG_SIZE})")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before every answer")
    parser.add_argument("--fail-rate", type=float, default=0.0,
                        help="share of requests answered with a --status code (default codes: 500)")
    parser.add_argument("--status", default="",
                        help="fault codes, comma-separated, each CODE (shares --fail-rate) or CODE=RATE: 500,429=0.05")
    parser.add_argument("--timeout-rate", type=float, default=0.0,
                        help="share of requests accepted but answered only after --hang-s")
    parser.add_argument("--hang-s", type=float, default=DEFAULT_HANG_S,
                        help=f"how long a timeout fault holds its answer (default {DEFAULT_HANG_S:g})")
    parser.add_argument("--drop-rate", type=float, default=0.0, help="share of connections closed without an answer")
    outage = parser.add_mutually_exclusive_group()
    outage.add_argument("--outage", metavar="START:END",
                        help="outage window: Unix seconds START:END, or ISO 8601 times START/END")
    outage.add_argument("--outage-for", type=float, metavar="SECONDS", help="outage from now for SECONDS")
    parser.add_argument("--outage-mode", choices=OUTAGE_MODES, default="503",
                        help="during an outage answer 503 or drop the connection (default 503)")
    parser.add_argument("--seed", type=int, help="random seed, for reproducible faults")
    parser.add_argument("--definitions", metavar="FILE",
                        help="event definitions (JSON list of {id, name, type}); answers then include a resolution")
    parser.add_argument("--quiet", action="store_true", help="do not log each /serve request to stderr")
    return parser


def faults_from_args(args: argparse.Namespace, now: float | None = None) -> Faults:
    """The Faults the command line asks for (FaultsError when they make no sense)."""
    now = time.time() if now is None else now
    shared: list[str] = []
    status: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in args.status.split(","))):
        code, _, rate = item.partition("=")
        if rate:
            try:
                status[code] = float(rate)
            except ValueError:
                raise FaultsError(f"--status {item!r}: the rate must be a number") from None
        else:
            shared.append(code)
    if args.fail_rate:
        shared = shared or ([] if status else ["500"])
        if not shared:
            raise FaultsError("--fail-rate needs codes without their own rate in --status, e.g. --status 500,503")
    elif shared:
        raise FaultsError("--status codes without =RATE need --fail-rate")
    for code in shared:
        status[code] = status.get(code, 0.0) + args.fail_rate / len(shared)
    settings: dict[str, Any] = {
        "latency_ms": args.latency_ms,
        "status": status,
        "timeout_rate": args.timeout_rate,
        "hang_s": args.hang_s,
        "drop_rate": args.drop_rate,
        "outage_mode": args.outage_mode,
        "seed": args.seed,
    }
    if args.outage_for is not None:
        settings["outage_for"] = args.outage_for
    elif args.outage:
        settings["outage_start"], settings["outage_end"] = _parse_outage(args.outage)
    return Faults.from_mapping(settings, now=now)


def _parse_outage(text: str) -> tuple[float, float]:
    separator = "/" if "/" in text else ":"
    start, _, end = text.partition(separator)
    try:
        return _parse_time(start), _parse_time(end)
    except ValueError:
        raise FaultsError(
            f"--outage {text!r}: give START:END in Unix seconds or START/END as ISO 8601 times"
        ) from None


def _parse_time(text: str) -> float:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        moment = datetime.fromisoformat(text)
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def main(argv: list[str] | None = None) -> int:
    """`python -m measure sandbox`: serve until Ctrl-C (or SIGTERM), then exit 0."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.consumer_key or not args.private_key:
        print("measure sandbox: needs a key pair: set MEASURE_CONSUMER_KEY and MEASURE_PRIVATE_KEY "
              "(or pass --consumer-key and --private-key)", file=sys.stderr)
        return 2
    try:
        faults = faults_from_args(args)
        definitions = load_definitions(args.definitions) if args.definitions else None
    except (FaultsError, DefinitionsError) as error:
        print(f"measure sandbox: {error}", file=sys.stderr)
        return 2
    sandbox = Sandbox(
        {args.consumer_key: args.private_key},
        tolerance=args.tolerance,
        duplicate_window=args.duplicate_window,
        faults=faults,
        log_size=args.log_size,
        advertiser_id=args.advertiser_id,
        definitions=definitions,
        log_requests=not args.quiet,
    )
    try:
        sandbox.start(args.host, args.port)
    except PortInUseError as error:
        print(f"measure sandbox: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"measure sandbox: cannot listen on {args.host}:{args.port}: {error.strerror or error}", file=sys.stderr)
        return 1
    previous = _exit_on_sigterm()
    try:
        print(f"measure sandbox listening on {sandbox.url}", flush=True)
        print(f"  POST {sandbox.serve_url}  consumer key {args.consumer_key[:4]}…"
              f"{'  advertiser ' + args.advertiser_id if args.advertiser_id else ''}", flush=True)
        print(f"  faults: {faults.describe()}", flush=True)
        if definitions is not None:
            print(f"  event definitions: {len(definitions)} from {args.definitions}", flush=True)
        print(f"  inspect: {sandbox.url}/_sandbox   (Ctrl-C stops)", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print("measure sandbox: stopped", file=sys.stderr, flush=True)
    return 0


def _exit_on_sigterm() -> Any:
    """Treat SIGTERM (e.g. from a dev-stack supervisor) like Ctrl-C; only the main thread may."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


if __name__ == "__main__":
    sys.exit(main())
