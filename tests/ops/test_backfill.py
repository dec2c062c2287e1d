"""Backfill against the real Pub/Sub emulator: files in, events on the topic, read back via the tap."""

from __future__ import annotations

import csv
import io
import json
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest

from measure import events
from measure.gcp.publisher import Publisher
from measure.ops import backfill
from tests.helpers import SITE_IDS, TOKENS, base_env

NOW = int(time.time())
FIELDS = ("user_id", "event_name", "ip", "time_stamp", "platform", "storefront", "revenue")


def good(i: int, **overrides) -> dict:
    row = {"user_id": f"player-{i}", "event_name": "purchase" if i % 3 == 0 else "game_open",
           "ip": f"175.124.{i // 250 % 250}.{i % 250 + 1}", "time_stamp": str(NOW - i),
           "platform": "pc", "storefront": "steam", "revenue": "4.99" if i % 3 == 0 else ""}
    row.update(overrides)
    return row


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_ndjson(path: Path, rows: list[dict]) -> Path:
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps({k: v for k, v in row.items() if v != ""}) + "\n")
    return path


def ids_of(rows: list[dict]) -> list[str]:
    """The event ids receive would give these rows: deterministic, so the test can know them."""
    raw = [{k: v for k, v in row.items() if v != ""} for row in rows]
    return [e.event_id for e in events.validate(raw, site_ids=SITE_IDS)]


def published_ids(topology, expect: int, timeout: float = 10.0) -> list[str]:
    """Every event id on the tap: at least `expect` distinct ones (or whatever came by `timeout`)."""
    ids: list[str] = []
    deadline = time.monotonic() + timeout
    while len(set(ids)) < expect and time.monotonic() < deadline:
        received = topology.pull(topology.names.events_tap_subscription, max_messages=1000,
                                 timeout=max(0.1, deadline - time.monotonic()))
        bodies = [json.loads(m.message.data) for m in received]
        assert all(b["v"] == 1 and "retry" not in b for b in bodies)
        ids += [b["event"]["event_id"] for b in bodies]
    # Anything extra that arrives a moment later would be a duplicate: look once more.
    ids += [json.loads(m.message.data)["event"]["event_id"]
            for m in topology.pull(topology.names.events_tap_subscription, max_messages=1000, timeout=0.3)]
    return ids


@pytest.fixture
def env(topology, monkeypatch):
    for name, value in base_env().items():
        monkeypatch.setenv(name, value)
    return topology


def run(argv, **kwargs) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = backfill.main([*argv, "--no-progress"], out=out, err=err, **kwargs)
    return status, out.getvalue(), err.getvalue()


def test_a_csv_file_lands_every_event_on_the_topic(env, tmp_path):
    rows = [good(i) for i in range(600)]
    path = write_csv(tmp_path / "events.csv", rows)
    status, out, err = run([str(path), "--chunk-size", "250"])
    assert status == 0, err
    assert Counter(published_ids(env, 600)) == Counter(ids_of(rows))
    assert "published     600" in out and "invalid       0" in out
    assert json.loads((tmp_path / "events.csv.checkpoint").read_text())["line"] == 601


def test_an_ndjson_file_lands_every_event_with_its_own_ids(env, tmp_path):
    rows = [good(i, event_id=f"order-{i}") for i in range(10)] + [good(i) for i in range(10, 20)]
    path = write_ndjson(tmp_path / "events.jsonl", rows)
    status, _, err = run([str(path)])
    assert status == 0, err
    ids = published_ids(env, 20)
    assert sorted(ids) == sorted(ids_of(rows))
    assert {f"order-{i}" for i in range(10)} <= set(ids)


def test_a_file_with_bad_lines_names_each_line_and_sends_nothing(env, tmp_path):
    rows = [good(0), good(1, ip="10.1.2.3"), good(2), good(3, time_stamp="soon", platform="switch"), good(4)]
    path = write_csv(tmp_path / "events.csv", rows)
    status, out, err = run([str(path)])
    assert status == 1
    lines = err.splitlines()
    assert lines[0].startswith(f"{path}:3: ip: ") and "private address" in lines[0]
    assert "10.1.2.3" not in err and "10.1.2.0/24" in err  # addresses are masked
    assert lines[1].startswith(f"{path}:5: ") and "time_stamp: 'soon' is not Unix seconds" in lines[1]
    assert "platform: platform/storefront pair 'switch/steam' has no site_id" in lines[1]
    assert "invalid       2" in out and "nothing was sent" in out
    assert published_ids(env, 1, timeout=0.5) == []
    assert not (tmp_path / "events.csv.checkpoint").exists()


def test_ndjson_problems_name_the_physical_line(env, tmp_path):
    path = tmp_path / "events.ndjson"
    path.write_text(json.dumps(good(0)) + "\n\n" + '{"user_id": "a", "user_id": "b"}\n' + "[1, 2]\n{oops\n")
    status, _, err = run([str(path)])
    assert status == 1
    assert f"{path}:3: user_id: appears twice" in err
    assert f"{path}:4: line: is not a JSON object" in err
    assert f"{path}:5: line: is not valid JSON" in err and "at column 2" in err
    assert published_ids(env, 1, timeout=0.5) == []


def test_skip_invalid_sends_only_the_good_lines(env, tmp_path):
    rows = [good(0), good(1, ip="not an ip"), good(2), good(3, user_id="")]
    path = write_csv(tmp_path / "events.csv", rows)
    status, out, err = run([str(path), "--skip-invalid"])
    assert status == 0, err
    assert f"{path}:3: ip:" in err and f"{path}:5: user_id: is required" in err
    assert sorted(published_ids(env, 2)) == sorted(ids_of([rows[0], rows[2]]))
    assert "published     2" in out


def test_dry_run_validates_and_counts_but_publishes_nothing(env, tmp_path):
    path = write_csv(tmp_path / "events.csv", [good(i) for i in range(30)])
    status, out, _ = run([str(path), "--dry-run"])
    assert status == 0
    assert "would publish 30" in out and "dry run" in out
    assert published_ids(env, 1, timeout=0.5) == []
    assert not (tmp_path / "events.csv.checkpoint").exists()


def test_an_interrupted_run_resumes_and_every_event_is_published_once(env, tmp_path):
    rows = [good(i) for i in range(1000)]
    path = write_csv(tmp_path / "events.csv", rows)
    status, out, _ = run([str(path), "--chunk-size", "200"], max_chunks=2)
    assert status == 3 and "run the same command again to resume" in out
    assert json.loads((tmp_path / "events.csv.checkpoint").read_text())["line"] == 401  # header + 400
    status, out, err = run([str(path), "--chunk-size", "200"])
    assert status == 0, err
    assert "skipped       400" in out and "published     600" in out
    ids = published_ids(env, 1000)
    assert Counter(ids) == Counter(ids_of(rows))  # each exactly once
    # A third run finds nothing left to do.
    status, out, _ = run([str(path), "--chunk-size", "200"])
    assert status == 0 and "nothing to do" in out
    assert published_ids(env, 1, timeout=0.5) == []


class FailingSink(backfill.PubSubSink):
    """The real publisher, failing its `fail_at`-th chunk the way an unreachable Pub/Sub would."""

    def __init__(self, publisher, topic, fail_at: int):
        super().__init__(publisher, topic)
        self.calls = 0
        self.fail_at = fail_at

    def send(self, chunk):
        self.calls += 1
        if self.calls == self.fail_at:
            raise backfill.SendError("injected: Pub/Sub unavailable")
        super().send(chunk)


def test_a_publish_failure_keeps_the_checkpoint_before_the_failed_chunk(env, tmp_path):
    rows = [good(i) for i in range(1000)]
    path = write_ndjson(tmp_path / "events.ndjson", rows)
    publisher = Publisher(env.project)
    sink = FailingSink(publisher, env.names.events_topic, fail_at=3)
    status, out, _ = run([str(path), "--chunk-size", "200", "--in-flight", "1"], sink=sink)
    assert status == 3 and "injected: Pub/Sub unavailable" in out
    assert json.loads((tmp_path / "events.ndjson.checkpoint").read_text())["line"] == 400
    status, out, err = run([str(path), "--chunk-size", "200"])
    assert status == 0, err
    assert Counter(published_ids(env, 1000)) == Counter(ids_of(rows))


class InterruptingSink(FailingSink):
    def send(self, chunk):
        if self.calls + 1 == self.fail_at:
            self.calls += 1
            raise KeyboardInterrupt  # what Ctrl-C looks like from inside a publish
        super().send(chunk)


def test_ctrl_c_reports_how_far_it_got_and_the_rerun_finishes(env, tmp_path):
    rows = [good(i) for i in range(500)]
    path = write_csv(tmp_path / "events.csv", rows)
    sink = InterruptingSink(Publisher(env.project), env.names.events_topic, fail_at=3)
    status, out, _ = run([str(path), "--chunk-size", "100", "--in-flight", "1"], sink=sink)
    assert status == 130
    assert "published     200" in out and "is at line 201; run the same command again to resume" in out
    assert run([str(path), "--chunk-size", "100"])[0] == 0
    assert Counter(published_ids(env, 500)) == Counter(ids_of(rows))


def test_with_chunks_in_flight_a_failure_never_moves_the_checkpoint_past_it(env, tmp_path):
    rows = [good(i) for i in range(1000)]
    path = write_csv(tmp_path / "events.csv", rows)
    sink = FailingSink(Publisher(env.project), env.names.events_topic, fail_at=2)
    status, _, _ = run([str(path), "--chunk-size", "100", "--in-flight", "4"], sink=sink)
    assert status == 3
    assert json.loads((tmp_path / "events.csv.checkpoint").read_text())["line"] == 101
    assert run([str(path), "--chunk-size", "100"])[0] == 0
    ids = published_ids(env, 1000)
    # Chunks confirmed after the failed one are sent again on resume: at least once, same ids.
    assert set(ids) == set(ids_of(rows))


def test_stdin_is_read_twice_via_a_spool(env, tmp_path):
    rows = [good(i) for i in range(5)]
    data = "".join(json.dumps({k: v for k, v in r.items() if v}) + "\n" for r in rows).encode()
    status, out, err = run(["-", "--format", "ndjson"], stdin=io.BytesIO(data))
    assert status == 0, err
    assert "backfill <stdin>" in out
    assert sorted(published_ids(env, 5)) == sorted(ids_of(rows))


def test_rate_limit_paces_the_chunks(env, tmp_path):
    path = write_csv(tmp_path / "events.csv", [good(i) for i in range(300)])
    started = time.monotonic()
    status, _, err = run([str(path), "--rate", "1000", "--chunk-size", "100"])
    assert status == 0, err
    assert time.monotonic() - started >= 0.2  # chunks start at 0, 0.1 and 0.2 s
    assert len(published_ids(env, 300)) == 300


def test_the_deployments_ceiling_is_the_default_rate(env, tmp_path, monkeypatch):
    monkeypatch.setenv("MEASURE_API_MAX_RPS", "50")
    path = write_csv(tmp_path / "events.csv", [good(i) for i in range(300)])
    started = time.monotonic()
    status, _, err = run([str(path), "--chunk-size", "100"])
    assert status == 0, err
    assert time.monotonic() - started >= 4.0  # chunks start at 0, 2 and 4 s
    assert len(published_ids(env, 300)) == 300


def test_a_checkpoint_of_another_file_is_refused(env, tmp_path):
    path = write_csv(tmp_path / "events.csv", [good(i) for i in range(3)])
    other = write_csv(tmp_path / "other.csv", [good(i) for i in range(4)])
    assert run([str(other), "--checkpoint", str(tmp_path / "x.checkpoint")])[0] == 0
    status, _, err = run([str(path), "--checkpoint", str(tmp_path / "x.checkpoint")])
    assert status == 2 and "was written for a different file" in err


def test_an_unwritable_checkpoint_stops_the_run_before_anything_is_sent(env, tmp_path):
    path = write_csv(tmp_path / "events.csv", [good(i) for i in range(3)])
    status, _, err = run([str(path), "--checkpoint", str(tmp_path / "no-such-dir" / "x.checkpoint")])
    assert status == 2 and "cannot be written" in err
    assert published_ids(env, 1, timeout=0.5) == []


def test_usage_problems_exit_2_with_a_clear_message(env, tmp_path):
    bad_header = tmp_path / "events.csv"
    bad_header.write_text("timestamp,user_id\n1,2\n")
    status, _, err = run([str(bad_header)])
    assert status == 2 and "line 1 (header): column 'timestamp' is not a known field; did you mean 'time_stamp'?" in err
    assert run([str(tmp_path / "missing.csv")])[2].endswith("missing.csv: no such file\n")
    assert "--format" in run([str(tmp_path / "events.txt")])[2]
    assert "--site-ids: " in run([str(bad_header), "--site-ids", "[]"])[2]
    assert run(["--rate"])[0] == 2


def test_invalid_utf8_and_cell_counts_are_problems_of_their_line(env, tmp_path):
    path = tmp_path / "events.csv"
    header = ",".join(FIELDS)
    row = ",".join(good(0).values())
    path.write_bytes(f"{header}\n{row}\n".encode() + b"caf\xe9," + row.split(",", 1)[1].encode() + b"\nonly,two\n")
    status, _, err = run([str(path)])
    assert status == 1
    assert f"{path}:3: user_id: is not valid UTF-8" in err
    assert f"{path}:4: line: has 2 cells; the header (line 1) has 7" in err


def test_the_webhook_mode_posts_batches_to_a_running_receive(env, tmp_path, function_server):
    url = function_server("receive", {**base_env(), **env.env()})
    rows = [good(i) for i in range(1100)]
    path = write_ndjson(tmp_path / "events.ndjson", rows)
    # One chunk of 1,100 goes as two requests: receive takes at most 1,000 events at once.
    status, out, err = run([str(path), "--webhook", url + "/measure", "--token", TOKENS[0], "--chunk-size", "1500"])
    assert status == 0, err + out
    assert TOKENS[0] not in out + err
    assert Counter(published_ids(env, 1100)) == Counter(ids_of(rows))


def peak_memory(path: Path, **kwargs) -> int:
    tracemalloc.start()
    try:
        summary = backfill.backfill(path, "csv", site_ids=SITE_IDS, progress=False, err=io.StringIO(), **kwargs)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        assert summary.status == 0


def test_memory_does_not_grow_with_the_file(env, tmp_path):
    # Both files are long enough to keep every in-flight slot busy: what is held at once is
    # chunk_size x in_flight events, whatever the length of the file.
    small = write_csv(tmp_path / "small.csv", [good(i) for i in range(200)])
    large = write_csv(tmp_path / "large.csv", [good(i) for i in range(1000)])
    sink = backfill.PubSubSink(Publisher(env.project), env.names.events_topic)
    backfill.backfill(small, "csv", site_ids=SITE_IDS, sink=sink, progress=False)  # warm the client up
    peak_small = peak_memory(small, sink=sink, chunk_size=25)
    peak_large = peak_memory(large, sink=sink, chunk_size=25)
    # Holding the parsed file would cost about 1 kB a line: 800 kB more for the large one.
    assert peak_large < peak_small * 1.3 + 100_000, (peak_small, peak_large)
