"""What `make run` and `make test` need from the machine, checked before anything starts.

    python3 measure/dev/prereqs.py run|test|...    (the Makefile runs it first, for its goals)

Everything Python is bootstrapped by make (.venv, .tools); what it cannot install is checked
here: Python 3.11+ with venv, gcloud with its beta and pubsub-emulator components, Java for the
emulator, and terraform. Each missing tool is named with the command that installs it on
Debian/Ubuntu and on macOS (Homebrew), all at once, so that one round of installing fixes them.
Silent, exit status 0, when nothing is missing; exit status 1 otherwise.

Run as a script by whatever `python3` is on PATH, possibly an old one, so that it can say that
the version is too old: it imports nothing from measure and keeps to syntax Python 3.8 reads.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

MIN_PYTHON = (3, 11)
# The emulator's jar is Java 8 bytecode; gcloud itself asks for Java 7+.
MIN_JAVA = 8
# terraform/tests mock the providers with override_during, which arrived in 1.9.
MIN_TERRAFORM = (1, 9)
RUN_TIMEOUT = 30

GCLOUD_APT = ("sudo apt-get install google-cloud-cli  (after adding Google's apt repository: "
              "https://cloud.google.com/sdk/docs/install#deb)")
GCLOUD_BREW = "brew install --cask gcloud-cli"

# What each make goal needs; a goal not listed needs Python only.
NEEDS = {
    "run": ("python", "gcloud", "java"),
    "test": ("python", "gcloud", "java", "terraform"),
    "pytest": ("python", "gcloud", "java", "terraform"),
    "unit": ("python", "terraform"),  # the fast tier: no emulator
    "bench": ("python", "gcloud", "java"),
    "chaos": ("python", "gcloud", "java"),
    "tf-check": ("python", "terraform"),
    "lint": ("python",),
}


@dataclasses.dataclass(frozen=True)
class Missing:
    """One tool that is absent or unusable, and how to install it on each supported platform."""

    tool: str
    problem: str
    debian: str
    macos: str

    def __str__(self) -> str:
        return (f"  {self.tool}: {self.problem}\n"
                f"      Debian/Ubuntu: {self.debian}\n"
                f"      macOS:         {self.macos}")


# ---------------------------------------------------------------- one check per tool


def check_python(version: tuple = tuple(sys.version_info[:3]), executable: str = sys.executable) -> list:
    shown = ".".join(str(part) for part in version)
    if tuple(version[:2]) < MIN_PYTHON:
        return [Missing(
            "python3", f"{executable} is Python {shown}; measure needs {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer "
                       f"(make picks python3.12, python3.13 or python3.11 from PATH, else python3; "
                       f"or say which: make PYTHON=/path/to/python3.12 ...)",
            "sudo apt-get install python3 python3-venv  (3.11+ on Debian 12 and Ubuntu 24.04; "
            "Ubuntu 22.04: python3.11 python3.11-venv)",
            "brew install python@3.12")]
    try:
        import ensurepip  # noqa: F401  (Debian splits it out; without it `python3 -m venv` fails)
        import venv  # noqa: F401
    except ImportError:
        minor = f"{version[0]}.{version[1]}"
        return [Missing("python3 venv", f"{executable} (Python {shown}) cannot create virtual environments",
                        f"sudo apt-get install python{minor}-venv", f"brew reinstall python@{minor}")]
    return []


def sdk_root(gcloud: str, env: dict) -> Path | None:
    """The Cloud SDK directory behind the `gcloud` on PATH: the tarball, Homebrew's cask and the
    apt package all link bin/gcloud into PATH, so resolving the link finds it; otherwise (a snap,
    a wrapper) gcloud is asked."""
    candidate = Path(gcloud).resolve().parent.parent
    if (candidate / "lib" / "gcloud.py").is_file():
        return candidate
    answer = run([gcloud, "info", "--format=value(installation.sdk_root)"], env)
    if answer is None or answer[0] != 0 or not answer[1].strip():
        return None
    return Path(answer[1].strip().splitlines()[-1])


def check_gcloud(env: dict) -> list:
    gcloud = shutil.which("gcloud", path=env.get("PATH", ""))
    if not gcloud:
        return [Missing("gcloud", "not found on PATH (it runs the Pub/Sub emulator)", GCLOUD_APT, GCLOUD_BREW)]
    root = sdk_root(gcloud, env)
    if root is None:
        return [Missing("gcloud", f"{gcloud} does not say where its SDK is (`gcloud info` failed)",
                        GCLOUD_APT, GCLOUD_BREW)]
    # A package-managed SDK (apt, yum) refuses `gcloud components install`: its components are packages.
    packaged = read_json(root / "lib" / "googlecloudsdk" / "core" / "config.json").get("disable_updater") is True
    missing = []
    components = (("pubsub-emulator", root / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator",
                   "google-cloud-cli-pubsub-emulator"),
                  ("beta", root / "lib" / "surface" / "beta" / "__init__.py", "google-cloud-cli"))
    for component, marker, package in components:
        if marker.is_file():
            continue
        install = f"gcloud components install {component}"
        apt = f"sudo apt-get install {package}" if package != "google-cloud-cli" else \
            "sudo apt-get install --reinstall google-cloud-cli  (beta is part of the package)"
        missing.append(Missing(
            f"gcloud {component} component", f"not installed in {root}",
            apt if packaged else f"{install}  (gcloud from Google's installer; with the apt package: {apt})",
            install))
    return missing


def check_java(env: dict) -> list:
    debian, macos = "sudo apt-get install default-jre-headless", "brew install --cask temurin"
    java = shutil.which("java", path=env.get("PATH", ""))
    if not java:
        return [Missing("java", f"not found on PATH (the Pub/Sub emulator needs Java {MIN_JAVA}+)", debian, macos)]
    # macOS ships /usr/bin/java as a stub that only says there is no Java: it has to be run.
    answer = run([java, "-version"], env)
    if answer is None or answer[0] != 0:
        said = answer[1].strip().splitlines()[0] if answer and answer[1].strip() else "no answer"
        return [Missing("java", f"{java} does not run ({said})", debian, macos)]
    # "1.8.0_392" before Java 9 (JEP 223), "17.0.15" after.
    match = re.search(r'version "((?:1\.)?(\d+)[^"]*)"', answer[1])
    if not match or int(match.group(2)) < MIN_JAVA:
        found = f"Java {match.group(1)}" if match else "of an unknown version"
        return [Missing("java", f"{java} is {found}; the Pub/Sub emulator needs Java {MIN_JAVA}+", debian, macos)]
    return []


def check_terraform(env: dict) -> list:
    debian = ("sudo apt-get install terraform  (after adding HashiCorp's apt repository: "
              "https://developer.hashicorp.com/terraform/install)")
    macos = "brew tap hashicorp/tap && brew install hashicorp/tap/terraform"
    terraform = shutil.which("terraform", path=env.get("PATH", ""))
    if not terraform:
        return [Missing("terraform", "not found on PATH (make test checks and tests terraform/)", debian, macos)]
    # Plain `terraform version`: -json output can be preceded by warnings about the CLI config.
    answer = run([terraform, "version"], env)
    match = re.search(r"Terraform v(\d+\.\d+\S*)", answer[1]) if answer and answer[0] == 0 else None
    version = match.group(1) if match else ""
    parts = tuple(int(p) for p in re.findall(r"\d+", version)[:2])
    if len(parts) < 2 or parts < MIN_TERRAFORM:
        found = version or "of an unknown version"
        return [Missing("terraform", f"{terraform} is {found}; `terraform test` with mock providers needs "
                                     f"{MIN_TERRAFORM[0]}.{MIN_TERRAFORM[1]}+", debian, macos)]
    return []


# ---------------------------------------------------------------- all of them


def missing(goals: list, env: dict | None = None, python: tuple | None = None) -> list:
    """What the make `goals` need that this machine lacks (with `env`'s PATH; `python` is the
    version of the interpreter that will build the venv, by default this one)."""
    env = dict(os.environ if env is None else env)
    needed = []
    for goal in goals or ["test"]:
        for tool in NEEDS.get(goal, ("python",)):
            if tool not in needed:
                needed.append(tool)
    checks = {"python": lambda: check_python(python) if python else check_python(),
              "gcloud": lambda: check_gcloud(env), "java": lambda: check_java(env),
              "terraform": lambda: check_terraform(env)}
    found = []
    for tool in needed:
        found += checks[tool]()
    return found


def report(goals: list, problems: list) -> str:
    goals = goals or ["test"]
    what = " and ".join(f"make {g}" for g in goals)
    verb = "needs" if len(goals) == 1 else "need"
    return "\n".join([f"{what} {verb} tools this machine does not have yet:", *(str(p) for p in problems),
                      "Install them, then run the command again (README.md, \"Platforms and prerequisites\")."])


def run(argv: list, env: dict):
    """(exit status, stdout + stderr) of a short command, None if it cannot be run at all."""
    try:
        done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.returncode, done.stdout.decode(errors="replace")


def read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def main(argv: list | None = None) -> int:
    goals = list(sys.argv[1:] if argv is None else argv)
    problems = missing(goals)
    if problems:
        print(report(goals, problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
