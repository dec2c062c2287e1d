"""Where a server's Python CPU goes, by the pieces of work a request is made of (--profile).

py-spy's raw stacks (one line a distinct stack: frames root first, joined by ";", then a count)
are attributed to one category each: the first category in the list whose rule matches the
stack. Rules are checked in order, so a narrow category (the ids, derived inside validation)
comes before the wide one that contains it (validation). A stack no rule takes is "other".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

Frames = list[str]  # "function (file)" root first, line numbers dropped


@dataclass(frozen=True)
class Category:
    name: str
    matches: Callable[[Frames], bool]


def under(*functions: str) -> Callable[[Frames], bool]:
    """Any frame is one of `functions` ("Webhook._authenticate (measure/functions/receive.py)"
    or just a prefix of it, "Webhook._authenticate")."""
    return lambda frames: any(frame.startswith(functions) for frame in frames)


def below(outer: str, *files: str) -> Callable[[Frames], bool]:
    """A frame from one of `files` (a path fragment: "requests/") inside the call `outer`."""
    def rule(frames: Frames) -> bool:
        inside = next((i for i, frame in enumerate(frames) if frame.startswith(outer)), None)
        return inside is not None and any(any(f in frame for f in files) for frame in frames[inside + 1:])
    return rule


def leaf_is(*functions: str) -> Callable[[Frames], bool]:
    return lambda frames: bool(frames) and frames[-1].startswith(functions)


def not_under(root: str) -> Callable[[Frames], bool]:
    return lambda frames: not any(frame.startswith(root) for frame in frames)


def read_stacks(path: Path) -> list[tuple[Frames, int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        frames = [frame.rsplit(":", 1)[0] + ")" if ":" in frame else frame for frame in stack.split(";")]
        stacks.append((frames, int(n)))
    return stacks


def breakdown(path: Path, categories: Sequence[Category]) -> tuple[dict[str, int], int]:
    """(samples per category name, in the order given, "other" last; total samples)."""
    counts = {category.name: 0 for category in categories}
    counts["other"] = 0
    total = 0
    for frames, n in read_stacks(path):
        total += n
        name = next((c.name for c in categories if c.matches(frames)), "other")
        counts[name] += n
    return counts, total


HANDLE = "Webhook.handle (measure/functions/receive.py)"
HTTP_LIBRARIES = ("requests/", "urllib3/", "http/client.py", "email/", "socket.py", "ssl.py",
                  "google/auth/")
# receive's request, piece by piece (issue 23's list), then what the bare function pays too.
RECEIVE: tuple[Category, ...] = (
    Category("gunicorn's main loop (accept, hand-off to a thread, keep-alive; the bare function pays it too)",
             not_under("ThreadWorker.handle ")),
    Category("logging (measure.logs.log: scrub, mask, JSON, write)",
             under("log (measure/logs.py)", "info (measure/logs.py)", "error (measure/logs.py)")),
    Category("Publish call: requests/urllib3/http.client", below("Publisher._send", *HTTP_LIBRARIES)),
    Category("Publish call: its JSON body and answer, base64", under("Publisher._send")),
    Category("group commit (queueing, locks, waking callers)", under("Publisher.publish")),
    Category("message encoding (event_message)", under("event_message")),
    Category("event ids (derive_event_id)", under("derive_event_id")),
    Category("validation (events.validate)", under("validate (measure/events/validation.py)")),
    Category("body parsing (events.parse_body)", under("parse_body (measure/events/body.py)")),
    Category("token check (bearer, Secret cache, compare)", under("Webhook._authenticate")),
    Category("reading the body (werkzeug stream)", below(HANDLE, "werkzeug/")),
    Category("the answer's JSON and the rest of Webhook.handle", under(HANDLE)),
    Category("runtime lookups (runtime.webhook)", under("receive (main.py)")),
    Category("the tracing decorator (logs.traced)", under("traced.<locals>.wrapper")),
    Category("functions-framework, Flask, werkzeug, gunicorn (the bare function pays these too)",
             under("ThreadWorker.handle ")),
)


def table_rows(counts: dict[str, int], total: int, cpu_ms_per_request: float | None) -> list[list[str]]:
    """Rows: category, share of the samples, and (given the server's CPU a request in the same run)
    the microseconds a request that share stands for. py-spy --gil samples Python holding the GIL,
    so C work done without it (socket I/O, the kernel) is in the CPU figure but in no category."""
    rows = []
    for name, n in counts.items():
        share = n / total if total else 0.0
        micro = f"{share * cpu_ms_per_request * 1000:.0f}" if cpu_ms_per_request is not None else "—"
        rows.append([name, f"{share:.1%}", micro, str(n)])
    return rows
