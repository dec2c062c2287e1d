"""Signing, per operation: Python `generate_signature` against the seed's Go BenchmarkGenerateSignature.

Same inputs as the Go benchmark (GET, its host, its whole URL as the uri, a current timestamp, no
POST parameters); Go runs `go test -bench` with -count, Python `timeit` with as many repeats, and
the medians are compared. The Go reference is copied to a temporary directory (shared/ is read-only).
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import os
import re
import shutil
import subprocess
import time
import timeit
from pathlib import Path

from benchmarks.common import SERVER_CPUS, Context, Skip, ensure_command, fmt, median, pinned_children, taskset

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "reqcrypt"
GO_URL = "http://123213.measurement.mobileapptracking.com/collect/click?pub_id=123&woof_id=22&campaign_id=5&payout=1000"
GO_HOST = "123213.measurement.mobileapptracking.com"
# The seed's second truth vector: POST with one parameter.
TRUTH = (("adv1", "POST", "engine.mobileapptracking.com", "/serve", "1406146778", "&var1=blue"),
         "X5wxZPS_s5941_d_wnaUcS1Qgd1jZvu94jv5aImtaxo")


def go_benchmark_binary(ctx: Context) -> Path:
    """The reference's test binary, built once (`go test -c`) so repeats can interleave with Python's."""
    if not REFERENCE.is_dir():
        raise Skip(f"the Go reference is not at {REFERENCE}")
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


def python_ns_per_op(stmt: str, namespace: dict, ops: int) -> float:
    with pinned_children(SERVER_CPUS):  # this process, on the CPU the Go benchmark gets
        return timeit.Timer(stmt, globals=namespace).timeit(number=ops) / ops * 1e9


# ---------------------------------------------------------------- what a faster sign() would do

_T36 = bytes(x ^ 0x36 for x in range(256))
_T5C = bytes(x ^ 0x5C for x in range(256))
_URLSAFE = bytes.maketrans(b"+/", b"-_")


@functools.lru_cache(maxsize=16)
def _pads(private_key: str):
    """HMAC's inner and outer SHA-256 states after the key block, computed once per key."""
    key = private_key.encode()
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return hashlib.sha256(key.translate(_T36)), hashlib.sha256(key.translate(_T5C))


def proposed_generate_signature(private_key: str, http_method: str, http_host: str, uri: str, timestamp: str,
                                post_params: str = "") -> str:
    """The change recommended for measure.signing.sign: same HMAC-SHA256, without OpenSSL's
    per-call HMAC set-up (about 3 µs of the 4-5 µs on this machine)."""
    if http_method not in ("GET", "POST"):
        raise ValueError(http_method)
    inner, outer = _pads(private_key)
    h = inner.copy()
    h.update(f"{http_method}\n{http_host}\n{uri}\n{timestamp}\n{post_params}".encode())
    o = outer.copy()
    o.update(h.digest())
    return binascii.b2a_base64(o.digest())[:43].translate(_URLSAFE).decode()


def run(ctx: Context) -> None:
    from measure import events, signing

    got = signing.generate_signature(*TRUTH[0])
    if got != TRUTH[1]:
        raise RuntimeError(f"generate_signature disagrees with the seed's truth vector: {got}")
    for key in ("privatekey", "k" * 100, ""):
        args = (key, "GET", GO_HOST, GO_URL, "1406146778", "")
        if proposed_generate_signature(*args) != signing.generate_signature(*args):
            raise RuntimeError("the proposed signing disagrees with generate_signature")

    timestamp = str(int(time.time()))
    namespace = {"g": signing.generate_signature, "p": proposed_generate_signature, "u": GO_URL, "h": GO_HOST,
                 "ts": timestamp}
    # What send does per event on top: the sorted parameter string of a typical event, then the signature.
    event = events.validate([{"user_id": "1a23fd44c21f8l5r", "event_name": "game_open", "ip": "175.124.248.15",
                              "time_stamp": timestamp, "platform": "pc", "storefront": "steam"}],
                            site_ids={"pc/steam": "2960"}, max_age=86400, now=float(timestamp))[0]
    namespace["e"] = signing.encode_post_params
    namespace["params"] = events.to_params(event, advertiser_id="877", site_id="2960")

    binary = go_benchmark_binary(ctx)
    ops = 100_000 if ctx.quick else 300_000
    go, py, proposed, per_event = [], [], [], []
    for _ in range(ctx.repeats):  # interleaved, so a busy moment of the machine hits both sides
        go.append(go_ns_per_op(binary, ops))
        py.append(python_ns_per_op('g("privatekey", "GET", h, u, ts, "")', namespace, ops))
        proposed.append(python_ns_per_op('p("privatekey", "GET", h, u, ts, "")', namespace, ops))
        per_event.append(python_ns_per_op('g("privatekey", "POST", h, "/serve", ts, e(params))', namespace,
                                          ops // 5))
    ratios = [p / g for p, g in zip(py, go, strict=True)]
    go_med, py_med = median(go), median(py)
    ratio = py_med / go_med
    ctx.figures["signing"] = {"go_ns": go_med, "python_ns": py_med, "proposed_ns": median(proposed),
                              "event_sign_ns": median(per_event)}

    def line(what, values):
        return [what, fmt(median(values)), f"{median(values) / go_med:.2f}×", ", ".join(fmt(x) for x in values)]

    ctx.table(
        "Signing: ns per operation, both pinned to one CPU, repeats interleaved",
        ["what", "median ns/op", "÷ Go", "repeats"],
        [line("Go BenchmarkGenerateSignature (the seed's reference)", go),
         line("Python measure.signing.generate_signature, same inputs", py),
         line("Python, the benchmark's own copy of the cached-pads signing (shipped in measure.signing)", proposed),
         line(f"Python encode_post_params + generate_signature of a game_open event "
              f"({len(namespace['params'])} params)", per_event)],
        note=f"Go: the reference's test binary (`go test -c`), `-test.bench ^BenchmarkGenerateSignature$ "
             f"-test.benchtime {ops}x -test.count 1` per repeat; Python: timeit, {ops} calls per repeat. "
             f"Per-repeat ratios Python ÷ Go: {', '.join(f'{r:.2f}' for r in ratios)}.")
    ctx.row("signing, per operation", f"{fmt(py_med)} ns/op (Python)", f"{fmt(go_med)} ns/op (Go)",
            f"{ratio:.2f}×", "≤ 1.0×", ratio <= 1.0,
            note=f"with cached HMAC pads {median(proposed) / go_med:.2f}×")
