"""Small shared test helpers (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import time

import functions_framework

from measure import runtime

ADVERTISER = "877"
SITE_IDS = {"pc/steam": "2960", "ios/appstore": "2961"}
# Webhook tokens are at least 32 characters (measure.config.MIN_TOKEN_LENGTH).
TOKENS = ("token-one-0123456789abcdefghijklmnop", "token-two-0123456789abcdefghijklmnop")
CONSUMER_KEY = "18d84eb30b59b5f3cc748bfe9f68b472"
PRIVATE_KEY = "local-private-key-for-tests"


def base_env(endpoint: str = "http://127.0.0.1:9/serve") -> dict[str, str]:
    return {
        "MEASURE_ADVERTISER_ID": ADVERTISER,
        "MEASURE_SITE_IDS": json.dumps(SITE_IDS),
        "MEASURE_ENDPOINT": endpoint,
        "MEASURE_CONSUMER_KEY": CONSUMER_KEY,
        "MEASURE_PRIVATE_KEY": PRIVATE_KEY,
        "MEASURE_WEBHOOK_TOKENS": "\n".join(TOKENS),
    }


def seed_form(**overrides) -> dict[str, str]:
    """The TRACKS guide's example call, with a current time_stamp (the seed's is from 2024)."""
    form = {
        "user_id": "1a23fd44c21f8l5r",
        "event_name": "game_open",
        "ip": "175.124.248.15",
        "time_stamp": str(int(time.time())),
        "platform": "pc",
        "storefront": "steam",
    }
    form.update(overrides)
    return form


def app_client(monkeypatch, target: str, env: dict[str, str], signature_type: str = "http"):
    """main.py's `target` in functions-framework's own app, via its test client."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runtime.reset()
    app = functions_framework.create_app(target=target, source="main.py", signature_type=signature_type)
    return app.test_client()


def bearer(token: str = TOKENS[0]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
