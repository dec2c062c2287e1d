"""The Terraform module's promises, checked without the Google provider (it cannot be downloaded here).

The module is terraform/modules/measure (everything a deployment creates); terraform/ is the root a
user applies, which configures the providers and calls the module once. `make tf-check` runs fmt,
`terraform validate` and `terraform test` on both, and checkov. These tests cover what those cannot:
what goes into the deployed archive, that keys never pass through Terraform, that the
local-development secret overrides never reach a function, that every knob is described, and that
the root passes every one of them through.
The text checks read the .tf files as `terraform fmt` leaves them (top-level blocks open and close
at column 0). The few checks that evaluate HCL run `terraform` on a scratch copy of one block that
needs no provider; they are skipped when terraform is not installed.
"""

from __future__ import annotations

import json
import modulefinder
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TF = ROOT / "terraform"
MODULE = TF / "modules" / "measure"
TERRAFORM = shutil.which("terraform")
needs_terraform = pytest.mark.skipif(TERRAFORM is None, reason="terraform is not on PATH")

# The local stand-ins for the Secret Manager secrets (docs/design.md, "Configuration").
FORBIDDEN_ENV = ("MEASURE_CONSUMER_KEY", "MEASURE_PRIVATE_KEY", "MEASURE_WEBHOOK_TOKENS")
FORBIDDEN_ENV_RE = re.compile(r"\bMEASURE_(CONSUMER_KEY|PRIVATE_KEY|WEBHOOK_TOKENS)\b(?!_SECRET)")


def tf_files(directory: Path = MODULE) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(directory.glob("*.tf"))}


def all_tf() -> str:
    return "\n".join(tf_files().values())


def strip_comments(text: str) -> str:
    """Drop # and // comments (outside strings, which is all these files need)."""
    out = []
    for line in text.splitlines():
        in_string = False
        cut = len(line)
        for i, ch in enumerate(line):
            if ch == '"' and (i == 0 or line[i - 1] != "\\"):
                in_string = not in_string
            elif not in_string and (ch == "#" or line.startswith("//", i)):
                cut = i
                break
        out.append(line[:cut])
    return "\n".join(out)


def root_tf() -> str:
    return "\n".join(tf_files(TF).values())


def blocks(kind: str, text: str | None = None) -> dict[str, str]:
    """Top-level labelled blocks of one kind, of the module unless `text` is given: {'name' or 'type.name': body}."""
    text = all_tf() if text is None else text
    pattern = re.compile(rf'^{kind}((?: "[^"]+")+) \{{\n(.*?)^\}}', re.M | re.S)
    return {".".join(re.findall(r'"([^"]+)"', m.group(1))): m.group(2) for m in pattern.finditer(text)}


def locals_of(file: str) -> str:
    """The first locals block of one file."""
    match = re.search(r"^locals \{\n(.*?)^\}", tf_files()[file], re.M | re.S)
    assert match, f"{file} has no locals block"
    return match.group(1)


def environment_block() -> str:
    text = locals_of("functions.tf")
    match = re.search(r"^  environment = merge\((.*?)^  \)", text, re.M | re.S)
    assert match, "functions.tf: local.environment = merge(...) not found"
    return match.group(1)


# --- variables and outputs -------------------------------------------------------------------


def test_every_variable_is_described_and_typed():
    variables = blocks("variable")
    assert len(variables) >= 15
    for name, body in variables.items():
        assert re.search(r'^  description = ".{20,}"', body, re.M), f"variable {name} has no real description"
        assert re.search(r"^  type\s+=", body, re.M), f"variable {name} has no type"


def test_every_output_is_described():
    outputs = blocks("output")
    assert {
        "webhook_url",
        "sweep_url",
        "topics",
        "subscriptions",
        "service_accounts",
        "secret_ids",
        "add_secret_version_commands",
    } <= set(outputs)
    for name, body in outputs.items():
        assert re.search(r'^  description = ".{10,}"', body, re.M), f"output {name} has no description"


def test_required_variables_are_only_the_three_that_have_no_sensible_default():
    required = {name for name, body in blocks("variable").items() if not re.search(r"^  default\s+=", body, re.M)}
    assert required == {"project_id", "advertiser_id", "site_ids"}


def _description(body: str) -> str:
    match = re.search(r'^  description = (".*")$', body, re.M)
    assert match, body
    return match.group(1)


def test_the_root_passes_every_module_variable_through_unchanged():
    """terraform/variables.tf declares each module variable (bar source_dir, which the root sets
    itself) with the same description and no default of its own; main.tf passes each one on."""
    module_vars = blocks("variable")
    root_vars = blocks("variable", root_tf())
    assert set(root_vars) == set(module_vars) - {"source_dir"}
    call = blocks("module", root_tf())["measure"]
    assert 'source = "./modules/measure"' in call
    assert 'source_dir = "${path.module}/.."' in call
    for name, body in root_vars.items():
        assert _description(body) == _description(module_vars[name]), f"variable {name}: descriptions differ"
        assert re.search(rf"^  {name}\s+= var\.{name}$", call, re.M), f"terraform/main.tf does not pass {name}"
        default = re.search(r"^  default\s+=\s+(.+)$", body, re.M)
        assert (default is None) == (name in {"project_id", "advertiser_id", "site_ids"}), name
        assert default is None or default.group(1) == "null", f"terraform/variables.tf: {name} has a default of its own"
        assert "validation {" not in body, f"{name} is validated in the module, once"
    for name, body in module_vars.items():
        if re.search(r"^  default\s+=", body, re.M):
            assert re.search(r"^  nullable\s+= false$", body, re.M), f"module variable {name}: null must be its default"


def test_the_root_has_the_modules_outputs():
    module_outputs = blocks("output")
    root_outputs = blocks("output", root_tf())
    assert set(root_outputs) == set(module_outputs)
    for name, body in root_outputs.items():
        assert f"value       = module.measure.{name}" in body
        assert _description(body) == _description(module_outputs[name]), f"output {name}: descriptions differ"


def test_the_module_has_no_provider_block_and_no_shell():
    module = strip_comments(all_tf())
    assert not re.search(r'^provider "', module, re.M), "a module with a provider block cannot be called with for_each"
    everything = strip_comments(root_tf() + module + "\n".join(
        p.read_text(encoding="utf-8") for p in TF.rglob("*.tf*") if ".terraform" not in p.parts))
    assert "provisioner" not in everything and "local-exec" not in everything
    assert 'data "google_project"' not in everything, "a plan-time project lookup needs Cloud Resource Manager first"
    assert 'data "google_client_config"' not in everything


def test_required_versions_cover_what_the_tests_use():
    for directory in (TF, MODULE):
        assert 'required_version = ">= 1.9"' in tf_files(directory)["versions.tf"], directory


def test_example_tfvars_sets_only_declared_variables():
    declared = set(blocks("variable", root_tf()))
    example = (TF / "terraform.tfvars.example").read_text(encoding="utf-8")
    used = set(re.findall(r"^#?\s*([a-z_]+)\s+=", example, re.M))
    assert used, "terraform.tfvars.example sets nothing"
    assert used <= declared, f"terraform.tfvars.example sets undeclared variables: {used - declared}"


# --- secrets never pass through Terraform ------------------------------------------------------


def test_no_secret_version_is_managed_or_read_by_terraform():
    code = strip_comments(all_tf())
    assert "google_secret_manager_secret_version" not in code
    assert "google_secret_manager_regional_secret_version" not in code
    assert "secret_environment_variables" not in code, "secrets are read at run time by measure/gcp/secrets.py"


def test_secret_containers_match_the_contract_and_commands_read_stdin():
    names = locals_of("main.tf")
    for key, suffix in (("consumer_key", "consumer-key"), ("private_key", "private-key"),
                        ("webhook_tokens", "webhook-tokens")):
        assert re.search(rf'^    {key}\s+= "\$\{{local\.prefix\}}-{suffix}"$', names, re.M), key
    # ... with the prefix measure/config.py's defaults start with (measure-consumer-key, ...).
    assert re.search(r'^  default     = "measure"$', blocks("variable")["name_prefix"], re.M)
    commands = blocks("output")["add_secret_version_commands"]
    assert "gcloud secrets versions add ${s.secret_id}" in commands
    assert "--data-file=-" in commands


def test_local_secret_overrides_are_never_function_environment():
    env = strip_comments(environment_block())
    assert not FORBIDDEN_ENV_RE.search(env)
    # Anywhere else they may only be named in the deny-list and its error messages.
    for name, text in tf_files().items():
        for line in strip_comments(text).splitlines():
            if FORBIDDEN_ENV_RE.search(line):
                assert "forbidden_environment" in line or "error_message" in line, f"{name}: {line.strip()}"


def test_every_function_refuses_the_local_overrides():
    functions = {name for name in blocks("resource") if name.startswith("google_cloudfunctions2_function.")}
    assert functions == {"google_cloudfunctions2_function.this"}, "one block for the three functions"
    body = blocks("resource")["google_cloudfunctions2_function.this"]
    assert "for_each = local.functions" in body
    assert "condition     = local.environment_is_clean" in body
    # The checked environment, the function's own (the sender settings), and functions-framework's THREADS.
    assert ("environment_variables            = merge(local.environment, each.value.environment, "
            "{ THREADS = tostring(var.concurrency[each.key]) })") in body
    functions_locals = locals_of("functions.tf")
    assert set(re.findall(r"^    (\w+) = \{$", functions_locals, re.M)) >= {"receive", "send", "sweep"}
    assert set(re.findall(r"environment = (\{\}|local\.sender_environment)", functions_locals)) == {
        "{}", "local.sender_environment"}
    locals_text = functions_locals
    for name in FORBIDDEN_ENV:
        assert f'"{name}"' in locals_text


def test_function_environment_is_the_documented_configuration():
    keys = set(re.findall(r"^\s+([A-Z][A-Z0-9_]+)\s+=", environment_block(), re.M))
    keys |= set(re.findall(r"\{ ([A-Z][A-Z0-9_]+) = ", environment_block()))
    expected = {
        "GOOGLE_CLOUD_PROJECT",
        "MEASURE_ADVERTISER_ID",
        "MEASURE_SITE_IDS",
        "MEASURE_ENDPOINT",
        "MEASURE_EVENTS_TOPIC",
        "MEASURE_RETRY_TOPIC",
        "MEASURE_RETRY_SUBSCRIPTION",
        "MEASURE_DEAD_LETTER_TOPIC",
        "MEASURE_CONSUMER_KEY_SECRET",
        "MEASURE_PRIVATE_KEY_SECRET",
        "MEASURE_WEBHOOK_TOKENS_SECRET",
        "MEASURE_EVENT_MAX_AGE",
        "MEASURE_RETRY_MAX_AGE",
        "MEASURE_SECRET_TTL",
        "MEASURE_SWEEP_BUDGET",
    }
    assert keys == expected
    sender = re.search(r"^  sender_environment = \{\n(.*?)^  \}", locals_of("functions.tf"), re.M | re.S)
    assert sender, "functions.tf: local.sender_environment not found"
    # docs/design.md, "Rate ceiling": both settings, on send and sweep only.
    assert set(re.findall(r"^\s+([A-Z][A-Z0-9_]+)\s+=", sender.group(1), re.M)) == {
        "MEASURE_API_MAX_RPS", "MEASURE_API_SENDERS"}
    assert "var.max_instances.send + var.max_instances.sweep" in sender.group(1)
    assert not FORBIDDEN_ENV_RE.search(sender.group(1))
    assert "PUBSUB_EMULATOR_HOST" not in all_tf()
    assert 'var.endpoint_override == "" ? {} : { MEASURE_ENDPOINT = var.endpoint_override }' in environment_block()


# --- access --------------------------------------------------------------------------------------


def test_only_receive_is_public():
    code = strip_comments(all_tf())
    assert code.count('"allUsers"') == 1
    assert code.count("allAuthenticatedUsers") == 0
    public = blocks("resource")["google_cloud_run_v2_service_iam_member.receive_public"]
    assert 'google_cloudfunctions2_function.this["receive"].' in public
    assert "checkov:skip=" in public


def test_runtime_identities_get_no_project_level_role():
    # Project-level roles go to the build account and to Google's own Eventarc service agent only.
    granted = {name: body for name, body in blocks("resource").items() if name.startswith("google_project_iam_")}
    assert set(granted) == {"google_project_iam_member.build_logs", "google_project_iam_member.eventarc_agent"}
    logs = granted["google_project_iam_member.build_logs"]
    assert "member  = local.sa_member.build" in logs and 'role    = "roles/logging.logWriter"' in logs
    agent = granted["google_project_iam_member.eventarc_agent"]
    assert 'role    = "roles/eventarc.serviceAgent"' in agent
    assert "member  = google_project_service_identity.eventarc.member" in agent
    # A binding of this deployment's own (see readiness.tf): destroy leaves Google's grant alone.
    assert "condition {" in agent and "title       = \"${local.prefix} Eventarc trigger\"" in agent
    # The build account reads the source on its bucket, nowhere else.
    bucket = blocks("resource")["google_storage_bucket_iam_member.build_source"]
    assert "bucket = google_storage_bucket.source.name" in bucket and "member = local.sa_member.build" in bucket
    code = strip_comments(all_tf() + root_tf())
    assert "google_project_iam_binding" not in code and "google_project_iam_policy" not in code


def test_publishers_and_readers_follow_the_data_flow():
    iam = tf_files()["iam.tf"]
    publishers = set(re.findall(r'\{ sa = "(\w+)", topic = "(\w+)" \}', iam))
    assert publishers == {
        ("receive", "events"),
        ("send", "retry"),
        ("send", "dead_letter"),
        ("sweep", "retry"),
        ("sweep", "dead_letter"),
    }
    readers = set(re.findall(r'\{ sa = "(\w+)", secret = "(\w+)" \}', iam))
    assert readers == {
        ("receive", "webhook_tokens"),
        ("send", "consumer_key"),
        ("send", "private_key"),
        ("sweep", "consumer_key"),
        ("sweep", "private_key"),
    }


# --- Pub/Sub -------------------------------------------------------------------------------------


def test_owned_subscriptions_keep_31_days_and_never_expire():
    body = blocks("resource")["google_pubsub_subscription.this"]
    assert 'max_retention = "2678400s"' in tf_files()["main.tf"]
    owned = locals_of("pubsub.tf")
    assert 'retry = { topic = "retry", retention = local.max_retention }' in owned
    assert 'dead_letter = { topic = "dead_letter", retention = local.max_retention }' in owned
    # The replay subscription (contract): on the events topic, as long as the topic keeps messages.
    assert 'replay = { topic = "events", retention = local.events_retention }' in owned
    assert 'replay      = "${local.prefix}-events-replay"' in locals_of("main.tf")
    assert "message_retention_duration = each.value.retention" in body
    assert re.search(r'expiration_policy \{\n\s+ttl = ""', body), "a subscription may expire"
    assert "push_config" not in body, "measure's subscriptions are pull subscriptions"


# --- the deployed archive ----------------------------------------------------------------------


def _terraform(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "TF_CLI_CONFIG_FILE": os.devnull,
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
        "TF_DATA_DIR": str(workdir / ".terraform"),
    }
    return subprocess.run([TERRAFORM, *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=120)


def _source_locals(repo_root: Path) -> str:
    text = locals_of("source.tf")
    original = '  repo_root = var.source_dir == "" ? "${path.module}/../../.." : var.source_dir\n'
    assert original in text, "source.tf: repo_root no longer defined as expected"
    return "locals {\n" + text.replace(original, f"  repo_root = {json.dumps(str(repo_root))}\n") + "}\n"


@needs_terraform
def test_archive_holds_exactly_main_requirements_and_the_package(tmp_path):
    repo = tmp_path / "repo"
    files = [
        "main.py",
        "requirements.txt",
        "requirements-dev.txt",
        "Makefile",
        "README.md",
        ".env",
        "measure/__init__.py",
        "measure/__main__.py",
        "measure/signing.py",
        "measure/links.py",
        "measure/ops/cli.py",
        "measure/tune/signing.py",
        "measure/sub/deep.py",
        "measure/__pycache__/cli.cpython-312.pyc",
        "measure/__pycache__/stray.py",
        "measure/sub/__pycache__/deep.cpython-312.py",
        "tests/test_x.py",
        "tests/conftest.py",
        ".venv/lib/site.py",
        ".tools/checkov/x.py",
        "terraform/main.tf",
        "terraform/build/old.zip",
        "docs/deploy.md",
        "examples/events.json",
    ]
    for f in files:
        (repo / f).parent.mkdir(parents=True, exist_ok=True)
        (repo / f).write_text("x\n")
    work = tmp_path / "tf"
    work.mkdir()
    (work / "main.tf").write_text(_source_locals(repo) + 'output "files" { value = keys(local.source_files) }\n')
    assert _terraform(work, "init", "-input=false", "-no-color").returncode == 0
    applied = _terraform(work, "apply", "-auto-approve", "-input=false", "-no-color")
    assert applied.returncode == 0, applied.stderr
    shown = json.loads(_terraform(work, "output", "-json", "files").stdout)
    assert sorted(shown) == [
        "main.py",
        "measure/__init__.py",
        "measure/sub/deep.py",
        "measure/tune/signing.py",
        "requirements.txt",
    ]


def _import_closure() -> set[str]:
    """The measure modules main.py imports, directly or not, including imports inside functions."""
    finder = modulefinder.ModuleFinder(path=[str(ROOT)])
    finder.run_script(str(ROOT / "main.py"))
    return {
        Path(module.__file__).resolve().relative_to(ROOT).as_posix()
        for name, module in finder.modules.items()
        if (name == "measure" or name.startswith("measure.")) and module.__file__
    }


@needs_terraform
def test_archive_holds_exactly_the_import_closure_of_main(tmp_path):
    (tmp_path / "main.tf").write_text(_source_locals(ROOT) + 'output "files" { value = keys(local.source_files) }\n')
    assert _terraform(tmp_path, "init", "-input=false", "-no-color").returncode == 0
    applied = _terraform(tmp_path, "apply", "-auto-approve", "-input=false", "-no-color")
    assert applied.returncode == 0, applied.stderr
    shipped = set(json.loads(_terraform(tmp_path, "output", "-json", "files").stdout))
    closure = _import_closure()
    assert "measure/functions/receive.py" in closure and "measure/tune/signing.py" in closure
    assert not any(f.startswith(("measure/ops/", "measure/dev/")) for f in closure), "a function imports a tool"
    assert shipped == closure | {"main.py", "requirements.txt"}


def test_archive_is_built_only_from_the_listed_files():
    archive = blocks("data")["archive_file.source"]
    assert not re.search(r"^\s+(source_dir|source_file|excludes)\s*=", archive, re.M)
    assert "for_each = local.source_files" in archive
    assert 'output_path      = "${path.root}/build/${local.prefix}-' in archive  # terraform/build/ is gitignored
    assert 'name         = "source-${data.archive_file.source.output_md5}.zip"' in all_tf()


def test_measure_package_holds_only_modules_the_archive_picks_up():
    """source.tf ships measure/**/*.py; any other file there would be missing from a deployment."""
    strays = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "measure").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".py"
    ]
    assert not strays, f"not deployed by terraform/source.tf: {strays}"


# --- variable validation (evaluated by terraform; variables need no provider) -------------------


@pytest.fixture(scope="module")
def variables_only(tmp_path_factory):
    if TERRAFORM is None:
        pytest.skip("terraform is not on PATH")
    work = tmp_path_factory.mktemp("tfvars")
    shutil.copy(MODULE / "variables.tf", work / "variables.tf")
    assert _terraform(work, "init", "-input=false", "-no-color").returncode == 0

    def plan(**values: str) -> subprocess.CompletedProcess:
        values = {"project_id": "studio-measure", "advertiser_id": "123", "site_ids": '{"pc/steam"="2960"}', **values}
        args = [arg for k, v in values.items() for arg in ("-var", f"{k}={v}")]
        return _terraform(work, "plan", "-input=false", "-no-color", "-lock=false", *args)

    return plan


@pytest.mark.parametrize(
    "endpoint",
    [
        "",
        "https://staging.example.com/serve",
        "https://123.measure.mobileapptracking.com:443/serve",
    ],
)
def test_endpoint_override_accepts_public_https(variables_only, endpoint):
    result = variables_only(endpoint_override=endpoint)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://api.example.com/serve",
        "https://localhost:8080/serve",
        "https://127.0.0.1/serve",
        "https://[::1]:9000/serve",
        "https://api.localhost/serve",
        "https://2130706433/",
        "https://0.0.0.0/",
        "https://127.0.0.1.nip.io/serve",
        "https://localtest.me/serve",
        "https://user@api.example.com/serve",
    ],
)
def test_endpoint_override_refuses_loopback_and_plain_http(variables_only, endpoint):
    result = variables_only(endpoint_override=endpoint)
    assert result.returncode != 0 and "endpoint_override" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("retry_max_age_seconds", "2678401"),
        ("site_ids", '{"steam"="2960"}'),
        ("site_ids", '{"pc/steam"="abc"}'),
        ("advertiser_id", "adv-1"),
        ("timeout_seconds", "{sweep=3600}"),
        ("memory", "256MB"),
        ("notification_channels", '["12345"]'),
    ],
)
def test_values_the_functions_would_refuse_are_refused_at_plan(variables_only, name, value):
    result = variables_only(**{name: value})
    assert result.returncode != 0 and "Invalid value for variable" in result.stderr, result.stderr


# --- monitoring ----------------------------------------------------------------------------------


def test_delivery_metrics_read_the_logged_fields_of_send_and_sweep():
    monitoring = tf_files()["monitoring.tf"]
    for field in ("jsonPayload.outcome", "jsonPayload.component", "jsonPayload.latency_ms", "jsonPayload.event_age_s"):
        assert field in monitoring
    assert 'jsonPayload.message=\\"delivery\\"' in monitoring
    assert 'resource.type=\\"cloud_run_revision\\"' in monitoring
    assert "local.function_names.send" in monitoring and "local.function_names.sweep" in monitoring


def test_type_mismatch_metric_reads_the_contracts_warning_line():
    """docs/design.md's contract: WARNING message="type mismatch" with action and site_event_type."""
    metric = blocks("resource")["google_logging_metric.type_mismatch"]
    assert 'jsonPayload.message=\\"type mismatch\\"' in metric
    assert "EXTRACT(jsonPayload.action)" in metric and "EXTRACT(jsonPayload.site_event_type)" in metric
    assert '"type_mismatch"' in locals_of("main.tf")  # named <prefix>_type_mismatch, measure_type_mismatch by default


def test_every_alert_notifies_and_points_to_the_runbook():
    runbook = (ROOT / "docs" / "runbook.md").read_text(encoding="utf-8")
    headings = {h.strip() for h in re.findall(r"^#+ (.+)$", runbook, re.M)}
    policies = {k: v for k, v in blocks("resource").items() if k.startswith("google_monitoring_alert_policy.")}
    assert len(policies) >= 3
    for name, body in policies.items():
        assert "notification_channels = var.notification_channels" in body, name
        match = re.search(r'Runbook: "([^"]+)" in \$\{local.runbook\}', body)
        assert match, f"{name}: documentation does not point to the runbook"
        assert match.group(1) in headings, f"{name}: docs/runbook.md has no section {match.group(1)!r}"


# --- apply order in a brand-new project (readiness.tf) ------------------------------------------

TF_OFFLINE_HINT = (
    "the dependency-order tests need Terraform with the google and archive providers: either online "
    "(`terraform init` can download them) or offline through the schema stand-in, by pointing TF_OFFLINE at "
    "it, e.g. TF_OFFLINE=/path/to/tf-offline (`make test` sets it when the offline validator is there)"
)


@pytest.fixture(scope="module")
def terraform_graph(tmp_path_factory) -> dict[str, set[str]]:
    """{node: the nodes it depends on directly}, from `terraform graph` of the module.

    Through TF_OFFLINE (tf-offline DIR COMMAND...) when set, else with the real providers, which
    `terraform init` must be able to download. Neither: fail, naming both ways, rather than skip."""
    offline = os.environ.get("TF_OFFLINE", "")
    if offline:
        tool = Path(offline)
        if not (tool.is_file() and os.access(tool, os.X_OK)):
            pytest.fail(f"TF_OFFLINE={offline!r} is not an executable file; {TF_OFFLINE_HINT}")
        result = subprocess.run([str(tool), str(MODULE), "graph"], capture_output=True, text=True, timeout=300)
    else:
        if TERRAFORM is None:
            pytest.fail(f"terraform is not on PATH; {TF_OFFLINE_HINT}")
        data_dir = tmp_path_factory.mktemp("tfgraph")
        init = _terraform_in(MODULE, data_dir, "init", "-backend=false", "-input=false", "-no-color")
        if init.returncode != 0:
            pytest.fail(f"`terraform init` could not install the providers ({init.stderr.strip()[-300:]}); "
                        f"{TF_OFFLINE_HINT}")
        result = _terraform_in(MODULE, data_dir, "graph")
    assert result.returncode == 0, result.stderr
    graph: dict[str, set[str]] = {}
    node = r'"(?:\[root\] )?([^"]+?)(?: \(expand\))?"'
    for source, target in re.findall(rf"^\s*{node} -> {node}", result.stdout, re.M):
        graph.setdefault(source, set()).add(target)
    assert graph, f"terraform graph printed no edges:\n{result.stdout[:500]}"
    return graph


def _terraform_in(workdir: Path, data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", "TF_DATA_DIR": str(data_dir)}
    return subprocess.run([TERRAFORM, *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=300)


def _depends_on(graph: dict[str, set[str]], node: str, other: str) -> bool:
    """Whether `node` is created only after `other` (a path of dependencies leads there)."""
    seen, todo = set(), [node]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt == other:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


FUNCTIONS = "google_cloudfunctions2_function.this"


def test_eventarc_agent_exists_and_is_granted_before_sends_trigger(terraform_graph):
    agent = "google_project_iam_member.eventarc_agent"
    assert _depends_on(terraform_graph, agent, "google_project_service_identity.eventarc")
    assert _depends_on(terraform_graph, FUNCTIONS, agent)
    # ... and the wait for that grant to propagate sits between them.
    assert _depends_on(terraform_graph, "time_sleep.grants_propagated", agent)
    assert _depends_on(terraform_graph, FUNCTIONS, "time_sleep.grants_propagated")


def test_alerts_and_dashboard_wait_until_the_log_metrics_are_visible(terraform_graph):
    for metric in ("delivery_outcomes", "delivery_latency", "delivered_event_age", "type_mismatch"):
        assert _depends_on(terraform_graph, "time_sleep.metrics_visible", f"google_logging_metric.{metric}")
    for user in ("google_monitoring_alert_policy.rejected_rate", "google_monitoring_dashboard.measure"):
        assert _depends_on(terraform_graph, user, "time_sleep.metrics_visible"), user


def test_builds_start_after_the_build_grants_have_propagated(terraform_graph):
    for grant in ("google_project_iam_member.build_logs", "google_storage_bucket_iam_member.build_source",
                  "google_artifact_registry_repository_iam_member.build_writer"):
        assert _depends_on(terraform_graph, "time_sleep.grants_propagated", grant), grant
    assert _depends_on(terraform_graph, FUNCTIONS, "time_sleep.grants_propagated")


def test_nothing_calls_an_api_before_the_wait_after_enabling_it(terraform_graph):
    assert _depends_on(terraform_graph, "time_sleep.apis_ready", "google_project_service.this")
    exempt = {"google_project_service.this", "time_sleep.apis_ready", "data.archive_file.source"}
    resources = [n for n in terraform_graph if re.match(r"^(google_|time_sleep\.)", n) and n not in exempt]
    assert len(resources) > 20
    late = [n for n in resources if not _depends_on(terraform_graph, n, "time_sleep.apis_ready")]
    assert not late, f"created without waiting for the APIs: {late}"


def test_every_variable_validation_has_a_terraform_test_that_trips_it():
    tests = (MODULE / "tests" / "validation.tftest.hcl").read_text(encoding="utf-8")
    tripped = set(re.findall(r"expect_failures = \[var\.(\w+)\]", tests))
    validated = {name for name, body in blocks("variable").items() if "validation {" in body}
    assert validated - tripped == set(), f"no terraform test refuses a bad value of {validated - tripped}"
    for name, body in blocks("variable").items():
        count = body.count("validation {")
        assert len(re.findall(rf"expect_failures = \[var\.{name}\]", tests)) >= count, name


def test_make_tf_check_validates_and_tests_every_configuration_with_tests():
    """Each directory with terraform test files (the root and the module) is in the Makefile's
    TF_DIRS, which tf-check validates and tests online and offline alike."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    match = re.search(r"^TF_DIRS = (.+)$", makefile, re.M)
    assert match, "Makefile: TF_DIRS not found"
    listed = set(match.group(1).split())
    with_tests = {p.parent.parent.relative_to(ROOT).as_posix() for p in TF.rglob("tests/*.tftest.hcl")
                  if ".terraform" not in p.parts}
    assert with_tests == {"terraform", "terraform/modules/measure"}
    assert with_tests <= listed
    recipe = makefile.split("\ntf-check:", 1)[1].split("\n\n", 1)[0]
    assert recipe.count("for dir in $(TF_DIRS)") == 2  # once online, once offline
    assert 'terraform -chdir=$$dir test' in recipe and '"$(TF_OFFLINE)" $$dir test' in recipe
