"""Settings from the environment (docs/design.md, "Configuration"), read once and checked whole.

A missing or malformed setting raises ConfigError naming it; the entry points turn that into one
log line and a failed start, so a bad deployment never half-works.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

DEFAULT_ENDPOINT = "https://{advertiser_id}.measure.mobileapptracking.com/serve"
# Pub/Sub keeps an unacknowledged message for at most 31 days; retrying longer than that is a lie.
MAX_RETENTION = 31 * 86400
# A secret is re-read at least this often: a rotated-out webhook token or key stops working within
# it (plus measure.gcp.secrets.STALE_LIMIT while Secret Manager cannot be reached).
MAX_SECRET_TTL = 900
# A webhook token is a random string of at least this many characters (secrets.token_urlsafe(24)
# is 32): a short one could be guessed by anyone who can reach the webhook.
MIN_TOKEN_LENGTH = 32


class ConfigError(ValueError):
    """A setting that is missing or malformed; `name` is the environment variable."""

    def __init__(self, name: str, problem: str):
        self.name = name
        self.problem = problem
        super().__init__(f"{name}: {problem}")


class InsecureEndpointError(ConfigError):
    def __init__(self, name: str, url: str):
        super().__init__(name, f"must be https unless the host is loopback, got {url!r}")


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# Terraform's rule for endpoint_override (terraform/variables.tf), regex for regex. Terraform's
# RE2 `\s` is [\t\n\f\r ] and its `$` is the end of the text, so both are spelled out here;
# tests/test_config.py feeds one table of URLs to this and to `terraform console`.
_TF_URL = re.compile(r"https://[^\t\n\f\r @]+")
_TF_HOST = re.compile(r"https://([^/?#]+)")
_TF_DNS_NAME = re.compile(r"([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]([a-z0-9-]*[a-z0-9])?\.?")
_TF_LOOPBACK_NAME = re.compile(
    r"(^|\.)(localhost|localdomain|localtest\.me|lvh\.me)\.?$|(^|[.-])127[.-][0-9]+[.-][0-9]+[.-][0-9]+([.-]|$)")


def is_deployable_endpoint(url: str) -> bool:
    """Terraform's endpoint_override rule: https to a public DNS name, no userinfo, no spaces, no
    IP literal (so neither the metadata server nor a private or loopback address), no name that
    resolves to loopback by convention or wildcard DNS."""
    if not _TF_URL.fullmatch(url):
        return False
    prefix = _TF_HOST.match(url.lower())
    host = prefix.group(1).split(":")[0] if prefix else ""
    return _TF_DNS_NAME.fullmatch(host) is not None and _TF_LOOPBACK_NAME.search(host) is None


def is_local_endpoint(url: str) -> bool:
    """The one exception a local run needs (the sandbox, `make run`): http(s) to `localhost` or a
    loopback address literal, without userinfo. A deployment never has it: Terraform refuses it."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and "@" not in parts.netloc and is_loopback_host(parts.hostname)


def check_endpoint(url: str, name: str = "MEASURE_ENDPOINT") -> str:
    """Refuse egress that would leak signed events in clear text or reach an address inside the
    network: Terraform's rule for a deployment, or the local sandbox on loopback."""
    if is_deployable_endpoint(url) or is_local_endpoint(url):
        return url
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise ConfigError(name, f"must be an absolute http(s) URL, got {url!r}")
    if urlsplit(url).scheme != "https" and "@" not in url:
        raise InsecureEndpointError(name, url)
    raise ConfigError(name, "must be https to a public DNS name (no IP address, user@ part, space or "
                            f"loopback name), or plain http to loopback for the local sandbox, got {url!r}")


def webhook_token_lines(raw: str) -> tuple[tuple[str, ...], list[int]]:
    """The webhook tokens of a secret's value, one a line (blank lines skipped), and the line
    numbers (1-based) of the lines refused as shorter than MIN_TOKEN_LENGTH."""
    tokens: list[str] = []
    short: list[int] = []
    for number, line in enumerate(raw.splitlines(), 1):
        token = line.strip()
        if token and len(token) < MIN_TOKEN_LENGTH:
            short.append(number)
        elif token:
            tokens.append(token)
    return tuple(tokens), short


@dataclass(frozen=True)
class Config:
    advertiser_id: str
    site_ids: Mapping[str, str]
    endpoint: str
    project: str | None = None
    events_topic: str = "measure-events"
    retry_topic: str = "measure-retry"
    retry_subscription: str = "measure-retry-sweeper"
    dead_letter_topic: str = "measure-dead-letter"
    # Secret ids, not values:
    consumer_key_secret: str = "measure-consumer-key"  # noqa: S105
    private_key_secret: str = "measure-private-key"  # noqa: S105
    webhook_tokens_secret: str = "measure-webhook-tokens"  # noqa: S105
    # Local stand-ins for the secrets (development and tests); None in a deployment.
    consumer_key: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    webhook_tokens: str | None = field(default=None, repr=False)
    event_max_age: int = 30 * 86400
    retry_max_age: int = 7 * 86400
    secret_ttl: int = 300
    # Seconds one sweep may spend; the sweep function's timeout must be well above it.
    sweep_budget: int = 240
    # Seconds to wait for the Measurement API's answer before the attempt counts as transient.
    api_timeout: int = 10
    # Seconds the circuit stays open (and an event routed around it waits) once the API keeps failing.
    breaker_cooldown: int = 30
    # Seconds to wait after each failed attempt of an event (the last step repeats): 30 s, 2 min,
    # 10 min, 1 h, 6 h, then every 24 h (measure.pipeline.retry adds the jitter).
    retry_schedule: tuple[float, ...] = (30, 120, 600, 3600, 6 * 3600, 24 * 3600)
    # The rate ceiling (measure.pipeline.ratelimit): requests a second for the whole deployment
    # (0: none), shared out among this many sending instances.
    api_max_rps: float = 0.0
    api_senders: int = 1

    def site_id(self, platform: str, storefront: str) -> str | None:
        return self.site_ids.get(f"{platform}/{storefront}")


def _seconds(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise ConfigError(name, f"must be a whole number of seconds, got {raw!r}")
    value = int(raw)
    if not low <= value <= high:
        raise ConfigError(name, f"must be between {low} and {high} seconds, got {value}")
    return value


def _schedule(env: Mapping[str, str]) -> tuple[float, ...]:
    """MEASURE_RETRY_SCHEDULE: "1,2,4" seconds, to rehearse retries quickly."""
    name = "MEASURE_RETRY_SCHEDULE"
    raw = env.get(name, "").strip()
    if not raw:
        return Config.retry_schedule
    steps = []
    for step in raw.split(","):
        try:
            seconds = float(step)
        except ValueError:
            raise ConfigError(name, f"must be comma-separated seconds like 30,120,600, got {raw!r}") from None
        if not 0 <= seconds <= MAX_RETENTION:  # also refuses nan and inf
            raise ConfigError(name, f"each step must be between 0 and {MAX_RETENTION} seconds, got {step.strip()!r}")
        steps.append(seconds)
    return tuple(steps)


def _site_ids(raw: str) -> dict[str, str]:
    name = "MEASURE_SITE_IDS"
    if not raw.strip():
        raise ConfigError(name, 'is required: a JSON object like {"pc/steam": "2960"}')
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(name, f"is not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(parsed, dict) or not parsed:
        raise ConfigError(name, 'must be a non-empty JSON object like {"pc/steam": "2960"}')
    site_ids = {}
    for key, value in parsed.items():
        platform, slash, storefront = key.partition("/")
        if not slash or not platform.strip() or not storefront.strip():
            raise ConfigError(name, f"key {key!r} must be '<platform>/<storefront>'")
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip().isdigit():
            raise ConfigError(name, f"site id for {key!r} must be digits, got {value!r}")
        site_ids[f"{platform.strip().lower()}/{storefront.strip().lower()}"] = value.strip()
    return site_ids


def _webhook_tokens(env: Mapping[str, str]) -> str | None:
    name = "MEASURE_WEBHOOK_TOKENS"
    raw = env.get(name) or None
    if raw is not None:
        tokens, short = webhook_token_lines(raw)
        if short:
            lines = ", ".join(str(n) for n in short)
            raise ConfigError(name, f"line(s) {lines}: a token must be at least {MIN_TOKEN_LENGTH} characters "
                                    "(python -c 'import secrets; print(secrets.token_urlsafe(24))' makes one)")
        if not tokens:
            raise ConfigError(name, "has no token: one a line")
    return raw


def load(env: Mapping[str, str] | None = None) -> Config:
    """Read and check every setting; the first problem found raises ConfigError."""
    env = os.environ if env is None else env
    advertiser_id = env.get("MEASURE_ADVERTISER_ID", "").strip()
    if not advertiser_id:
        raise ConfigError("MEASURE_ADVERTISER_ID", "is required (your TUNE advertiser id)")
    if not advertiser_id.isdigit():
        raise ConfigError("MEASURE_ADVERTISER_ID", f"must be digits, got {advertiser_id!r}")
    endpoint = env.get("MEASURE_ENDPOINT", "").strip() or DEFAULT_ENDPOINT.format(advertiser_id=advertiser_id)
    check_endpoint(endpoint)

    def name(var: str, default: str) -> str:
        return env.get(var, "").strip() or default

    # Defaults are Config's own, written once there.
    return Config(
        advertiser_id=advertiser_id,
        site_ids=_site_ids(env.get("MEASURE_SITE_IDS", "")),
        endpoint=endpoint,
        project=env.get("GOOGLE_CLOUD_PROJECT", "").strip() or None,
        events_topic=name("MEASURE_EVENTS_TOPIC", Config.events_topic),
        retry_topic=name("MEASURE_RETRY_TOPIC", Config.retry_topic),
        retry_subscription=name("MEASURE_RETRY_SUBSCRIPTION", Config.retry_subscription),
        dead_letter_topic=name("MEASURE_DEAD_LETTER_TOPIC", Config.dead_letter_topic),
        consumer_key_secret=name("MEASURE_CONSUMER_KEY_SECRET", Config.consumer_key_secret),
        private_key_secret=name("MEASURE_PRIVATE_KEY_SECRET", Config.private_key_secret),
        webhook_tokens_secret=name("MEASURE_WEBHOOK_TOKENS_SECRET", Config.webhook_tokens_secret),
        consumer_key=env.get("MEASURE_CONSUMER_KEY") or None,
        private_key=env.get("MEASURE_PRIVATE_KEY") or None,
        webhook_tokens=_webhook_tokens(env),
        event_max_age=_seconds(env, "MEASURE_EVENT_MAX_AGE", Config.event_max_age, 60, 366 * 86400),
        retry_max_age=_seconds(env, "MEASURE_RETRY_MAX_AGE", Config.retry_max_age, 60, MAX_RETENTION),
        secret_ttl=_seconds(env, "MEASURE_SECRET_TTL", Config.secret_ttl, 0, MAX_SECRET_TTL),
        sweep_budget=_seconds(env, "MEASURE_SWEEP_BUDGET", Config.sweep_budget, 1, 3000),
        api_timeout=_seconds(env, "MEASURE_API_TIMEOUT", Config.api_timeout, 1, 120),
        breaker_cooldown=_seconds(env, "MEASURE_BREAKER_COOLDOWN", Config.breaker_cooldown, 1, 3600),
        retry_schedule=_schedule(env),
        api_max_rps=_max_rps(env),
        api_senders=_senders(env),
    )


def _max_rps(env: Mapping[str, str]) -> float:
    name = "MEASURE_API_MAX_RPS"
    raw = env.get(name, "").strip()
    try:
        value = float(raw or 0)
    except ValueError:
        raise ConfigError(name, f"must be requests a second like 50 (0 or unset: no ceiling), got {raw!r}") from None
    if not 0 <= value <= 1_000_000:  # also refuses nan and inf
        raise ConfigError(name, f"must be between 0 (no ceiling) and 1000000, got {raw!r}")
    return value


def _senders(env: Mapping[str, str]) -> int:
    name = "MEASURE_API_SENDERS"
    raw = env.get(name, "").strip()
    if not raw:
        return Config.api_senders
    if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
        raise ConfigError(name, f"must be a whole number of instances, at least 1, got {raw!r}")
    return int(raw)
