"""measure.events as a package: pure, knowing nothing of TUNE or Pub/Sub."""

from __future__ import annotations

from measure import events


def test_the_package_is_pure_and_knows_nothing_of_tune_or_pub_sub():
    from pathlib import Path

    for module in Path(events.__file__).parent.glob("*.py"):
        source = module.read_text(encoding="utf-8")
        for other in ("flask", "functions_framework", "requests", "google", "measure.tune", "measure.pipeline",
                      "measure.gcp", "measure.functions"):
            assert f"import {other}" not in source and f"from {other}" not in source, (module.name, other)
