"""main.py with Secret Manager faked at the client library's boundary, for function servers that
tests run as subprocesses (`functions-framework --source tests/secretmanager_main.py`).

Before main.py (and so measure) is imported, `google.cloud.secretmanager.SecretManagerServiceClient`
is replaced by tests.gcp.standins.FakeSecretManager, driven through two files the test names:
MEASURE_FAKE_SECRETS_STATE (JSON: values, fail, stall, ...; read before each access) and
MEASURE_FAKE_SECRETS_LOG (a line per access). Everything else is main.py as deployed.
"""

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # functions-framework puts only tests/ on the path

from google.cloud import secretmanager  # noqa: E402

from tests.gcp.standins import FakeSecretManager  # noqa: E402

secretmanager.SecretManagerServiceClient = FakeSecretManager(  # type: ignore[misc]
    state_path=os.environ["MEASURE_FAKE_SECRETS_STATE"], log_path=os.environ["MEASURE_FAKE_SECRETS_LOG"])

from main import receive, send, sweep  # noqa: E402

__all__ = ["receive", "send", "sweep"]
