# The two commands a user types: `make run` and `make test`. Everything Python they need is
# bootstrapped here; what cannot be (gcloud and its emulator, Java, terraform) is checked first,
# by measure/dev/prereqs.py, which names each missing tool and the command that installs it.
SHELL := /bin/bash
# The Python that builds .venv: the first of these that runs and is 3.11+ (3.12 first: Cloud
# Functions runs python312), else python3, which the check then names as too old.
ifeq ($(origin PYTHON),undefined)
PYTHON := $(or $(shell for p in python3.12 python3.13 python3.11; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { echo $$p; break; }; done),python3)
endif
VENV := .venv
PY := $(VENV)/bin/python
TOOLS := .tools
CHECKOV := $(TOOLS)/checkov/bin/checkov
PYTEST_ARGS ?=

# Terraform is checked with the real providers when the registry answers (`terraform init`),
# and otherwise with an offline stand-in that serves the providers' published schemas:
# TF_VALIDATE=/path/to/tf-validate, whose sibling tf-offline (TF_OFFLINE) runs any other
# terraform command (`terraform test`, and the `terraform graph` of tests/test_terraform.py).
# This project's CI keeps them beside the repository. TF_MODE=online or offline skips the probe.
TF_VALIDATE ?= $(wildcard ../shared/tools/tf-validate/tf-validate)
TF_OFFLINE ?= $(if $(TF_VALIDATE),$(dir $(TF_VALIDATE))tf-offline)
TF_MODE ?= auto
# The root users apply (terraform/) and the module it calls (terraform/modules/measure), each with
# its own terraform test files beside it.
TF_DIRS = terraform terraform/modules/measure
# Shell: sets $mode to online when `terraform init` could install the providers, else offline.
TF_PROBE = mkdir -p .run; mode=$(TF_MODE); \
	if [ "$$mode" != offline ]; then \
	  if TF_REGISTRY_CLIENT_TIMEOUT=15 TF_IN_AUTOMATION=1 terraform -chdir=terraform init -backend=false \
	       -input=false -no-color >.run/tf-init.log 2>&1; then mode=online; \
	  elif [ "$$mode" = online ]; then \
	    cat .run/tf-init.log >&2; echo "make: TF_MODE=online but terraform init failed (above)" >&2; exit 1; \
	  else mode=offline; fi; \
	fi
# The seed's Go signing example, which `make bench` compares against (benchmarks/signing.py).
GO_REFERENCE ?= ../shared/reference/reqcrypt

.PHONY: run test unit lint tf-check pytest bench chaos clean prereqs

# A stamp per requirements set: the venv is rebuilt only when the pins change.
$(VENV)/.stamp: requirements.txt requirements-dev.txt | prereqs
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# checkov pins its own versions of shared libraries, so it gets a venv of its own.
$(CHECKOV): | prereqs
	@test -x $(TOOLS)/checkov/bin/python || $(PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/pip install --quiet --disable-pip-version-check checkov==3.3.30

# Before anything else, for the goals asked for: every missing tool at once, with its install command.
prereqs:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found: install Python 3.11+" \
	  "(Debian/Ubuntu: sudo apt-get install python3 python3-venv; macOS: brew install python@3.12)" \
	  "or name one: make PYTHON=/path/to/python3.12 $(MAKECMDGOALS)" >&2; exit 1; }
	@$(PYTHON) measure/dev/prereqs.py $(or $(filter-out prereqs,$(MAKECMDGOALS)),venv)

run: $(VENV)/.stamp
	$(PY) -m measure dev

test: $(VENV)/.stamp lint tf-check pytest

# ruff, then mypy over measure/ (strict on what ships; see [tool.mypy] in pyproject.toml).
lint: $(VENV)/.stamp
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

tf-check: $(CHECKOV) | prereqs
	terraform fmt -check -recursive terraform
	@$(TF_PROBE); \
	if [ "$$mode" = online ]; then \
	  echo "terraform: the registry answered; checking with the real providers"; \
	  for dir in $(TF_DIRS); do \
	    ( set -x; TF_IN_AUTOMATION=1 terraform -chdir=$$dir init -backend=false -input=false -no-color >/dev/null \
	      && terraform -chdir=$$dir validate && terraform -chdir=$$dir test ) || exit 1; \
	  done; \
	else \
	  echo "terraform: checking offline ($$(grep -m1 -o 'Error: .*' .run/tf-init.log 2>/dev/null || echo TF_MODE=offline))"; \
	  if [ -z "$(TF_VALIDATE)" ]; then \
	    echo "tf-check: terraform/ cannot be validated: no registry access for its providers and no offline" \
	      "validator; connect to registry.terraform.io, or set TF_VALIDATE=/path/to/tf-validate" >&2; exit 1; \
	  fi; \
	  for tool in "$(TF_VALIDATE)" "$(TF_OFFLINE)"; do [ -x "$$tool" ] || { \
	    echo "tf-check: $$tool is not an executable file (TF_VALIDATE=$(TF_VALIDATE))" >&2; exit 1; }; done; \
	  for dir in $(TF_DIRS); do \
	    ( set -x; "$(TF_VALIDATE)" $$dir && "$(TF_OFFLINE)" $$dir test ) || exit 1; \
	  done; \
	fi
	$(CHECKOV) -d terraform --framework terraform --quiet --compact --skip-download

# Offline, the tests that run terraform themselves get the stand-in through TF_OFFLINE.
# Most tests wait on servers, the emulator or a clock rather than on the CPU, so two workers
# (pytest-xdist; a test file stays on one worker, with its fixtures) halve the wall time on two
# cores. The few tests marked `timing` bound wall-clock figures (a rate at the sandbox, a p99), so
# they run afterwards, alone. PYTEST_WORKERS=0 runs everything in this one process.
PYTEST_WORKERS ?= 2
XDIST = $(if $(filter-out 0,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS) --dist loadfile)
PYTEST_ENV = $(TF_PROBE); \
	if [ "$$mode" = offline ] && [ -n "$(TF_OFFLINE)" ]; then export TF_OFFLINE="$(TF_OFFLINE)"; fi
pytest: $(VENV)/.stamp
	@$(PYTEST_ENV); set -x; \
	$(PY) -m pytest $(XDIST) -m "not timing" $(PYTEST_ARGS) || exit 1; \
	$(PY) -m pytest -m timing $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ]  # 5: none selected

# The fast tier, to run while editing: no Pub/Sub emulator (so neither Java nor gcloud) and nothing
# slow. The functions' and pipeline's tests run on the in-memory Pub/Sub (measure/dev/memorypubsub.py).
unit: $(VENV)/.stamp
	@$(PYTEST_ENV); set -x; $(PY) -m pytest $(XDIST) -m "not emulator and not slow" $(PYTEST_ARGS)

bench: $(VENV)/.stamp
	MEASURE_GO_REFERENCE=$(abspath $(GO_REFERENCE)) $(PY) -m benchmarks

# The full fault-injection run. Pushes to send come from an Eventarc stand-in with push's
# concurrency (CHAOS_PUSH=relay); CHAOS_PUSH=emulator uses the emulator's push subscription, whose
# two pushes at a time, not measure, then set the drain time (tests/test_chaos.py says more).
# Then the dependencies' faults (tests/test_chaos_dependencies.py): Secret Manager stalled for 30 s
# after the cache expired, Secret Manager unreachable at a cold start, and a hung publish.
CHAOS_PUSH ?= relay
chaos: $(VENV)/.stamp
	MEASURE_CHAOS_FULL=1 MEASURE_CHAOS_PUSH=$(CHAOS_PUSH) $(PY) -m pytest tests/test_chaos.py tests/test_chaos_dependencies.py -s

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .ruff_cache .mypy_cache .hypothesis .run
