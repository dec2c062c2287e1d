"""Signing, per operation: Python `generate_signature` against the seed's Go BenchmarkGenerateSignature.

What Go times (reqcrypt_test.go): `GenerateSignature("privatekey", "GET", h, u, curTimeStr, "")` in a
b.N loop, with h the host, u the whole URL (used as the uri), curTimeStr the current Unix time in
decimal, computed once before the loop, and nothing else inside the loop. Python times the same call
of the public `measure.tune.signing.generate_signature` with the same inputs (the names bound as locals, as
Go's are; the cyclic GC left on, as Go's GC is), and nothing else.

This machine is noisy (a 2-core VM with other work on both cores: the speed of one CPU swings by half
within a second, with or without other processes on it), so the two sides are measured in fine-grained
pairs, both pinned to the same CPU: a repeat is 20 runs of the Go binary and 20 Python timeit runs of
15,000 operations each, alternating G P P G G P ..., so that both sides sample the same stretch of
noise and a drift cancels; after a discarded warm-up there are at least 9 repeats (about 15 s).
Reported: the median ns/op of each side, each repeat's ratio Python ÷ Go and their median, which
decides the row (a repeat's two figures share the machine's state, so their ratio is steadier than
either figure). The Go reference is copied to a temporary directory and built once with
`go test -c` (the reference's directory may be read-only); each Go run is one process (about 8 ms to
start, not timed).
"""

from __future__ import annotations

import base64
import hmac
import os
import re
import shutil
import subprocess
import time
import timeit
from pathlib import Path

from benchmarks.common import SERVER_CPUS, Context, Skip, ensure_command, fmt, median, pinned_children, taskset

# The seed's Go example (reqcrypt), outside this repository: `make bench` passes its GO_REFERENCE.
REFERENCE = Path(os.environ["MEASURE_GO_REFERENCE"]) if os.environ.get("MEASURE_GO_REFERENCE") else None
GO_URL = "http://123213.measurement.mobileapptracking.com/collect/click?pub_id=123&woof_id=22&campaign_id=5&payout=1000"
GO_HOST = "123213.measurement.mobileapptracking.com"
# The seed's three truth vectors (reqcrypt_test.go), as generate_signature arguments.
TRUTH = [
    (("adv1", "GET", "engine.mobileapptracking.com", "/serve", "1406146778", ""),
     "ur3aUlwbRXGcxxt0EvDa2BQTqkCUjb4RdHww1S5EAWY"),
    (("adv1", "POST", "engine.mobileapptracking.com", "/serve", "1406146778", "&var1=blue"),
     "X5wxZPS_s5941_d_wnaUcS1Qgd1jZvu94jv5aImtaxo"),
    (("adv1", "POST", "engine.mobileapptracking.com", "/serve", "1406146778", "&alpha=beta&meow=%2B-%3D&var1=blue"),
     "_2fqNArAgJO3vvtE0ff3XZ3mYSsnIbu5Ynkaw-S-o-c"),
]
MIN_REPEATS = 9
# A repeat is CHUNKS Go runs and CHUNKS Python runs of CHUNK operations each, alternating: 300,000
# operations a side, about 0.7 s each. Halving the runs from 30,000 operations to 15,000 narrowed the
# per-repeat ratios from 0.79-1.01 to 0.83-0.94 on a busy machine; one 300,000-operation run a side
# per repeat gave 0.55-1.32.
CHUNK, CHUNKS = 15_000, 20
EVENT_OPS = 10_000
# Go's statement and Python's: the same literals, the rest locals bound before the loop.
PY_STMT = 'g("privatekey", "GET", h, u, ts, "")'
PY_SETUP = "import gc; gc.enable(); g = _g; h = _h; u = _u; ts = _ts"


def go_benchmark_binary(ctx: Context) -> Path:
    """The reference's test binary, built once (`go test -c`) so repeats can interleave with Python's."""
    if REFERENCE is None or not REFERENCE.is_dir():
        raise Skip(f"the Go reference is not at {REFERENCE}: make bench GO_REFERENCE=<directory of reqcrypt>")
    go = ensure_command("go", "golang-go")
    work = ctx.workdir / "reqcrypt"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(REFERENCE, work)
    for path in work.rglob("*"):
        path.chmod(0o644)
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOPROXY": "off", "GOFLAGS": "-mod=mod",
           "GOCACHE": str(ctx.workdir / "gocache"), "GOPATH": str(ctx.workdir / "gopath")}
    done = subprocess.run([go, "test", "-c", "-o", "reqcrypt.test"], cwd=work, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"go test -c failed: {done.stdout[-800:]} {done.stderr[-800:]}")
    return work / "reqcrypt.test"


def go_ns_per_op(binary: Path, ops: int) -> float:
    """One `go test -bench ^BenchmarkGenerateSignature$ -benchtime OPSx -count 1`, pinned like Python."""
    done = subprocess.run([*taskset(SERVER_CPUS), str(binary), "-test.run", "^$",
                           "-test.bench", "^BenchmarkGenerateSignature$", "-test.benchtime", f"{ops}x",
                           "-test.count", "1"], cwd=binary.parent, capture_output=True, text=True, timeout=300,
                          check=False)
    found = re.findall(r"BenchmarkGenerateSignature\S*\s+\d+\s+([\d.]+) ns/op", done.stdout)
    if done.returncode != 0 or len(found) != 1:
        raise RuntimeError(f"the Go benchmark failed: {done.stdout[-800:]} {done.stderr[-800:]}")
    return float(found[0])


def paired_repeat(binary: Path, timer: timeit.Timer, chunk: int, chunks: int) -> tuple[float, float]:
    """One repeat: (Go ns/op, Python ns/op) over `chunks` runs of `chunk` operations on each side.

    The runs alternate G P P G G P ..., so both sides sample the same stretch of the machine's noise
    (on this VM the speed of one CPU swings by half within a second) and a slow drift cancels.
    """
    go_ns = py_ns = 0.0
    for k in range(chunks):
        if k % 2 == 0:
            go_ns += go_ns_per_op(binary, chunk) * chunk
            py_ns += timer.timeit(number=chunk) * 1e9
        else:
            py_ns += timer.timeit(number=chunk) * 1e9
            go_ns += go_ns_per_op(binary, chunk) * chunk
    return go_ns / (chunk * chunks), py_ns / (chunk * chunks)


def run(ctx: Context) -> None:
    from measure import events
    from measure.tune import signing
    from measure.tune.params import to_params

    for args, truth in TRUTH:
        if signing.generate_signature(*args) != truth:
            raise RuntimeError(f"generate_signature{args} disagrees with the seed's truth vector {truth}")
    timestamp = str(int(time.time()))  # Go's curTimeStr
    # What is timed is a correct signature: the standard library's HMAC of the spec's string to sign.
    expected = base64.urlsafe_b64encode(hmac.digest(
        b"privatekey", f"GET\n{GO_HOST}\n{GO_URL}\n{timestamp}\n".encode(), "sha256")).decode().rstrip("=")
    if signing.generate_signature("privatekey", "GET", GO_HOST, GO_URL, timestamp, "") != expected:
        raise RuntimeError("generate_signature disagrees with hmac on the benchmark's inputs")

    namespace = {"_g": signing.generate_signature, "_h": GO_HOST, "_u": GO_URL, "_ts": timestamp}
    # What send does per event on top: the sorted parameter string of a typical event, then the signature.
    event = events.validate([{"user_id": "1a23fd44c21f8l5r", "event_name": "game_open", "ip": "175.124.248.15",
                              "time_stamp": timestamp, "platform": "pc", "storefront": "steam"}],
                            site_ids={"pc/steam": "2960"}, max_age=86400, now=float(timestamp))[0]
    namespace["_e"] = signing.encode_post_params
    namespace["_params"] = to_params(event, advertiser_id="877", site_id="2960")
    event_stmt = 'g("privatekey", "POST", h, "/serve", ts, e(params))'
    event_setup = "e = _e; params = _params"

    binary = go_benchmark_binary(ctx)
    chunk, chunks = CHUNK, 4 if ctx.quick else CHUNKS
    repeats = ctx.repeats if ctx.quick else max(ctx.repeats, MIN_REPEATS)
    timer = timeit.Timer(PY_STMT, setup=PY_SETUP, globals=namespace)
    per_event_timer = timeit.Timer(event_stmt, setup=f"{PY_SETUP}; {event_setup}", globals=namespace)
    go, py = [], []
    with pinned_children(SERVER_CPUS):  # this process, on the CPU the Go benchmark gets
        paired_repeat(binary, timer, chunk, 2)  # warm-up, discarded: page cache, Python's adaptive interpreter
        for _ in range(repeats):
            go_ns, py_ns = paired_repeat(binary, timer, chunk, chunks)
            go.append(go_ns)
            py.append(py_ns)
        # The per-event figure is not compared with Go: a few short repeats after the pairs.
        per_event = [per_event_timer.timeit(EVENT_OPS) / EVENT_OPS * 1e9 for _ in range(3)]

    ratios = [p / g for p, g in zip(py, go, strict=True)]
    go_med, py_med, ratio = median(go), median(py), median(ratios)
    ctx.figures["signing"] = {"go_ns": go_med, "python_ns": py_med, "ratio": ratio, "ratios": ratios,
                              "event_sign_ns": median(per_event)}

    def line(what, values, ratio_text):
        return [what, fmt(median(values)), ratio_text, ", ".join(fmt(x) for x in values)]

    per_repeat = ", ".join(f"{r:.2f}" for r in ratios)
    ctx.table(
        "Signing: ns per operation, both pinned to one CPU, Go and Python runs alternating",
        ["what", "median ns/op", "÷ Go", "repeats"],
        [line("Go BenchmarkGenerateSignature (the seed's reference)", go, "1.00×"),
         line("Python measure.tune.signing.generate_signature, same inputs", py,
              f"{ratio:.2f}× (median of per-repeat ratios)"),
         line(f"Python encode_post_params + generate_signature of a game_open event "
              f"({len(namespace['_params'])} params)", per_event, f"{median(per_event) / go_med:.2f}×")],
        note=f"{repeats} repeats after a discarded warm-up; each is {chunks} Go and {chunks} Python runs of {chunk:,} "
             f"operations, alternating G P P G G P …. Go: the reference's test binary (`go test -c`), "
             f"`-test.bench ^BenchmarkGenerateSignature$ -test.benchtime {chunk}x -test.count 1` under "
             f"`taskset -c {SERVER_CPUS}`; Python: timeit of `{PY_STMT}` on CPU {SERVER_CPUS}. "
             f"Per-repeat ratios Python ÷ Go: "
             f"{per_repeat} (median {ratio:.2f}, range {min(ratios):.2f}–{max(ratios):.2f}); ratio of the "
             f"medians {py_med / go_med:.2f}.")
    ctx.row("signing, per operation", f"{fmt(py_med)} ns/op (Python)", f"{fmt(go_med)} ns/op (Go)",
            f"{ratio:.2f}×", "≤ 1.0×", ratio <= 1.0,
            note=f"median of {repeats} paired ratios ({per_repeat}); medians' ratio {py_med / go_med:.2f}×")
