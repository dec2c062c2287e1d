"""The prerequisites check that `make run` and `make test` run first, on a PATH made for each test.

The script is run as the Makefile runs it; its PATH holds only what a test put there: stand-in
`java`, `terraform` and a gcloud SDK tree shaped like the real ones (the files the check looks at).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from measure.dev.prereqs import missing

SCRIPT = Path(__file__).resolve().parents[2] / "measure" / "dev" / "prereqs.py"


class Machine:
    """A PATH directory to put stand-in tools into."""

    def __init__(self, root: Path):
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir()

    @property
    def env(self) -> dict[str, str]:
        return {"PATH": str(self.bin), "HOME": str(self.root)}

    def tool(self, name: str, output: str, status: int = 0) -> None:
        path = self.bin / name
        # Shell built-ins only: nothing else is on this PATH.
        path.write_text(f"#!/bin/sh\nprintf '%s\\n' {shlex.quote(output)} >&2\nexit {status}\n")
        path.chmod(0o755)

    def gcloud(self, *, components: tuple[str, ...] = ("pubsub-emulator", "beta"), packaged: bool = False) -> Path:
        """An SDK tree with bin/gcloud linked into PATH, as the installer, brew and apt leave it."""
        sdk = self.root / "google-cloud-sdk"
        (sdk / "bin").mkdir(parents=True)
        (sdk / "lib" / "googlecloudsdk" / "core").mkdir(parents=True)
        (sdk / "lib" / "gcloud.py").write_text("")
        (sdk / "lib" / "googlecloudsdk" / "core" / "config.json").write_text(json.dumps({"disable_updater": packaged}))
        if "pubsub-emulator" in components:
            (sdk / "platform" / "pubsub-emulator" / "bin").mkdir(parents=True)
            (sdk / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator").write_text("")
        if "beta" in components:
            (sdk / "lib" / "surface" / "beta").mkdir(parents=True)
            (sdk / "lib" / "surface" / "beta" / "__init__.py").write_text("")
        gcloud = sdk / "bin" / "gcloud"
        gcloud.write_text("#!/bin/sh\nexit 0\n")
        gcloud.chmod(0o755)
        (self.bin / "gcloud").symlink_to(gcloud)
        return sdk

    def everything(self) -> None:
        self.gcloud()
        self.tool("java", 'openjdk version "17.0.15" 2025-04-15')
        self.tool("terraform", "Terraform v1.11.4\non linux_amd64")

    def check(self, *goals: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(SCRIPT), *goals], env=self.env, capture_output=True, text=True,
                              timeout=60, check=False)


@pytest.fixture
def machine(tmp_path):
    return Machine(tmp_path)


def test_nothing_missing_is_silent_success(machine):
    machine.everything()
    result = machine.check("run", "test")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def sections(report: str) -> dict[str, str]:
    """tool -> its lines in the report (a tool's line is indented by two spaces, its commands by six)."""
    parts = re.split(r"\n(?=  \S)", report.strip())[1:]
    return {part.strip().split(": ", 1)[0]: part for part in parts}


def test_an_empty_path_names_every_tool_with_both_install_commands(machine):
    result = machine.check("test")
    assert result.returncode == 1
    assert result.stderr.startswith("make test needs tools this machine does not have yet:")
    found = sections(result.stderr)
    assert set(found) == {"gcloud", "java", "terraform"}
    for tool, debian, macos in [
        ("gcloud", "sudo apt-get install google-cloud-cli", "brew install --cask gcloud-cli"),
        ("java", "sudo apt-get install default-jre-headless", "brew install --cask temurin"),
        ("terraform", "sudo apt-get install terraform",
         "brew tap hashicorp/tap && brew install hashicorp/tap/terraform"),
    ]:
        assert found[tool].startswith(f"  {tool}: not found on PATH")
        assert f"\n      Debian/Ubuntu: {debian}" in found[tool]
        assert f"\n      macOS:         {macos}" in found[tool]


def test_make_run_does_not_ask_for_terraform(machine):
    result = machine.check("run")
    assert "  gcloud: not found" in result.stderr and "  java: not found" in result.stderr
    assert "terraform" not in result.stderr


def test_missing_components_say_how_this_gcloud_installs_them(machine):
    machine.everything()
    (machine.bin / "gcloud").unlink()
    (machine.root / "google-cloud-sdk").rename(machine.root / "full-sdk")
    machine.gcloud(components=())
    result = machine.check("run")
    assert result.returncode == 1
    assert "  gcloud pubsub-emulator component: not installed in" in result.stderr
    assert "  gcloud beta component: not installed in" in result.stderr
    assert "macOS:         gcloud components install pubsub-emulator" in result.stderr
    assert "Debian/Ubuntu: gcloud components install beta  (gcloud from Google's installer" in result.stderr


def test_an_apt_installed_gcloud_gets_the_package_to_install(machine):
    machine.tool("java", 'openjdk version "17.0.15" 2025-04-15')
    machine.gcloud(components=("beta",), packaged=True)
    result = machine.check("run")
    assert result.returncode == 1
    assert "Debian/Ubuntu: sudo apt-get install google-cloud-cli-pubsub-emulator\n" in result.stderr
    assert "beta component" not in result.stderr


@pytest.mark.parametrize(("output", "status", "problem"), [
    ('java version "1.7.0_80"', 0, 'is Java 1.7.0_80; the Pub/Sub emulator needs Java 8+'),
    # macOS's /usr/bin/java when no Java is installed.
    ("The operation couldn't be completed. Unable to locate a Java Runtime.", 1,
     "does not run (The operation couldn't be completed. Unable to locate a Java Runtime.)"),
])
def test_a_java_that_cannot_run_the_emulator_is_named(machine, output, status, problem):
    machine.everything()
    machine.tool("java", output, status)
    result = machine.check("run")
    assert result.returncode == 1
    assert f"  java: {machine.bin / 'java'} {problem}" in result.stderr
    assert "gcloud" not in result.stderr


def test_java_8_in_its_old_version_format_is_enough(machine):
    machine.everything()
    machine.tool("java", 'openjdk version "1.8.0_392"')
    assert machine.check("run").returncode == 0


def test_a_terraform_without_terraform_test_is_named(machine):
    machine.everything()
    machine.tool("terraform", "Terraform v1.5.7\non darwin_arm64")
    result = machine.check("test")
    assert sections(result.stderr)["terraform"].startswith(
        f"  terraform: {machine.bin / 'terraform'} is 1.5.7; `terraform test` with mock providers needs 1.9+")


def test_an_old_python_is_named_with_the_way_to_pick_another(tmp_path):
    [problem] = missing(["lint"], env={"PATH": str(tmp_path)}, python=(3, 9, 6))
    assert problem.tool == "python3"
    assert "is Python 3.9.6; measure needs 3.11 or newer" in problem.problem
    assert "make PYTHON=" in problem.problem
    assert problem.macos == "brew install python@3.12"
    assert problem.debian.startswith("sudo apt-get install python3 python3-venv")
