"""`make bench` = `python -m benchmarks`: every row of issue 7, printed and appended to RESULTS.md.

    python -m benchmarks                   all rows, 5 repeats each
    python -m benchmarks --only receive    some rows (see ROWS: signing, coldstart, receive, send, sweep, ...)
    python -m benchmarks --quick           fewer and shorter repeats (a smoke run; not for quoting)
    python -m benchmarks --no-record       print only; leave RESULTS.md alone
    python -m benchmarks --profile         also py-spy the servers under load (py-spy into .tools/bench)

What the rows need and this installs when missing (as root, from Debian's packages): wrk (the
load generator) and golang-go (the Go reference's own benchmark). The Pub/Sub emulator (gcloud and
Java) must already be there, as for `make test`. Every server listens on loopback only and every
loop is bounded. Exit status: 0 when every row ran (a missed target is reported, not an error),
1 when a row failed to run, 2 with --strict when a target was missed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from benchmarks.common import Context, Row, Skip, machine, markdown_table

ROWS = ("signing", "coldstart", "receive", "latency", "send", "sweep", "degraded", "outage", "secrets")
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
FIGURES = Path(__file__).resolve().parent / "figures.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=None, help=f"comma-separated rows of {', '.join(ROWS)}")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per figure (default 5, --quick 3)")
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repeats: a smoke run")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    parser.add_argument("--strict", action="store_true", help="exit 2 when a target is missed")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (server logs)")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the servers under load (installs py-spy into .tools/bench) and print where "
                             "their CPU time goes")
    args = parser.parse_args(argv)
    args.only = [r.strip() for r in (args.only or ",".join(ROWS)).split(",") if r.strip()]
    unknown = [r for r in args.only if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    args.repeats = args.repeats or (3 if args.quick else 5)
    return args


def summary_table(rows: list[Row]) -> str:
    met = {True: "yes", False: "**no**", None: "—"}
    return markdown_table(["what", "figure (median)", "ceiling, same run", "ratio", "target", "met", "note"],
                          [[r.what, r.figure, r.ceiling, r.ratio, r.target, met[r.met], r.note] for r in rows])


def memory_rows(ctx: Context) -> None:
    """One row per function whose server ran under load in this run: its peak memory."""
    for function, mib in ctx.peak_memory.items():
        ctx.row(f"memory, {function} under the load above", f"{mib:.0f} MiB peak", target="≤ 256 MiB",
                met=mib <= 256, note="PSS of server master + worker" if "RSS" not in function else "peak RSS")


def record(ctx: Context, info: dict[str, str], elapsed: float, failures: list[str], args) -> str:
    lines = [
        f"## {info['date']} — {info['cpu']}, {info['cores']} cores, {info['memory']}, Python {info['python']}",
        "",
        f"commit {info['commit']}; `python -m benchmarks{' --quick' if args.quick else ''}` "
        f"({', '.join(args.only)}), {args.repeats} repeats, {elapsed:.0f} s; load average at start {info['load']}; "
        f"CPU: {info.get('cpu_details') or 'unknown'}.",
        "",
        summary_table(ctx.rows),
    ]
    for table in ctx.tables:
        lines += ["", f"**{table.title}**", "", markdown_table(table.header, table.rows)]
        if table.note:
            lines += ["", table.note]
    if failures:
        lines += ["", "Rows that did not run:", *[f"- {f}" for f in failures]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    print(f"measure benchmarks on {info['cpu']}, {info['cores']} cores, {info['memory']}, Python {info['python']}, "
          f"{info['date']} (load {info['load']})", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="measure-bench-"))
    ctx = Context(repeats=args.repeats, quick=args.quick, workdir=workdir, profile=args.profile)
    began = time.monotonic()
    failures: list[str] = []
    try:
        for name in args.only:
            print(f"\n=== {name} ===", flush=True)
            started = time.monotonic()
            try:
                importlib.import_module(f"benchmarks.{name}").run(ctx)
            except Skip as exc:
                failures.append(f"{name}: skipped: {exc}")
                print(f"{name} skipped: {exc}", flush=True)
            except Exception as exc:
                traceback.print_exc()
                failures.append(f"{name}: failed: {type(exc).__name__}: {exc}")
            print(f"({name}: {time.monotonic() - started:.0f} s)", flush=True)
        memory_rows(ctx)
    except KeyboardInterrupt:
        failures.append("interrupted")
    finally:
        ctx.close()
    elapsed = time.monotonic() - began
    text = record(ctx, info, elapsed, failures, args)
    print("\n" + text, flush=True)
    if not args.no_record:
        with open(RESULTS, "a") as f:
            if RESULTS.stat().st_size if RESULTS.exists() else False:
                f.write("\n")
            f.write(text)
        print(f"appended to {RESULTS}", flush=True)
        if not args.quick and set(args.only) == set(ROWS):
            # The measured per-event figures that benchmarks/cost.py (and docs/cost.md) price.
            FIGURES.write_text(json.dumps({"machine": info, **ctx.figures, "peak_memory_mib": ctx.peak_memory},
                                          indent=2, default=float) + "\n")
            print(f"wrote {FIGURES}; `python -m benchmarks.cost` prices a million events from it", flush=True)
    if args.keep:
        print(f"work directory kept: {workdir}", flush=True)
    else:
        with contextlib.suppress(OSError):
            shutil.rmtree(workdir)
    if failures:
        return 1
    if args.strict and any(r.met is False for r in ctx.rows):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
