"""Each constant and default is written once; where a copy cannot be derived (Terraform, the
package metadata), a test ties it to the code's."""

import re
import tomllib
from pathlib import Path

import measure
from measure import config, events
from measure.functions import receive, sweep
from measure.pipeline import retry
from measure.tune import client

ROOT = Path(__file__).resolve().parents[1]


def _tf(name: str) -> str:
    (path,) = ROOT.glob(f"terraform/**/{name}")  # wherever terraform/ keeps its modules
    return path.read_text(encoding="utf-8")


def _resource(text: str, kind: str, name: str) -> str:
    match = re.search(rf'^resource "{kind}" "{name}" \{{\n(.*?)^\}}', text, re.M | re.S)
    assert match, f"no resource {kind}.{name}"
    return match.group(1)


def test_the_retry_subscriptions_ack_deadline_in_terraform_is_sweeps():
    # One for_each block makes every subscription measure owns, the retry one among them.
    pubsub = _tf("pubsub.tf")
    assert re.search(r"^\s*retry\s*=\s*\{", pubsub, re.M), "the retry subscription is not among owned_subscriptions"
    retry_subscription = _resource(pubsub, "google_pubsub_subscription", "this")
    (seconds,) = re.findall(r"^\s*ack_deadline_seconds\s*=\s*(\d+)\s*$", retry_subscription, re.M)
    assert int(seconds) == sweep.ACK_DEADLINE_S


def test_the_webhook_body_limit_is_the_events_one():
    assert receive.MAX_BODY_BYTES == events.MAX_BODY_BYTES == 1024 * 1024


def test_defaults_are_configs():
    defaults = config.Config
    assert events.DEFAULT_MAX_AGE == defaults.event_max_age
    assert client.READ_TIMEOUT == defaults.api_timeout
    assert retry.SCHEDULE == defaults.retry_schedule


def test_the_version_is_written_once():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "measure.__version__"}
    assert client.USER_AGENT.startswith(f"measure/{measure.__version__} ")
