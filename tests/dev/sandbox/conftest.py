"""The fixtures every sandbox test uses: a running sandbox and an HTTP session."""

import pytest
import requests

from measure.dev.sandbox import Sandbox
from tests.dev.sandbox.client import ADVERTISER, CONSUMER, PRIVATE


@pytest.fixture
def sandbox():
    with Sandbox({CONSUMER: PRIVATE}, advertiser_id=ADVERTISER).start() as running:
        yield running


@pytest.fixture
def session():
    with requests.Session() as http:
        yield http
