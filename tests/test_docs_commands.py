"""The deployment docs run: every Terraform output, variable, resource and metric that README.md and
docs/deploy.md name exists in terraform/, is used the way it can be (`-raw` only on a string output),
the example tfvars quote the real defaults, the role list covers what the module creates, and
docs/cost.md quotes what `python -m benchmarks.cost` prints from benchmarks/figures.json.
"""

from __future__ import annotations

import json
import re

import pytest

from benchmarks import cost
from tests.test_terraform import MODULE, ROOT, TF, blocks

DOCS = {name: (ROOT / name).read_text(encoding="utf-8") for name in ("README.md", "docs/deploy.md")}


def _value(body: str) -> str:
    match = re.search(r"^  value\s+=\s+(.+)$", body, re.M)
    assert match, body
    return match.group(1).strip()


def _local_definition(name: str) -> str:
    for text in (p.read_text(encoding="utf-8") for p in MODULE.glob("*.tf")):
        for block in re.findall(r"^locals \{\n(.*?)^\}", text, re.M | re.S):
            match = re.search(rf"^  {name}\s+=\s+(.+)$", block, re.M)
            if match:
                return match.group(1).strip()
    raise AssertionError(f"local.{name} is not defined")


def output_is_string(name: str) -> bool:
    """Whether an output's value is a single string (so `terraform output -raw` can print it)."""
    value = _value(blocks("output")[name])
    if value.startswith("local."):
        value = _local_definition(value.removeprefix("local."))
    return not value.startswith(("{", "[", "merge(", "toset(")) and (
        value.startswith('"') or value.endswith(".uri") or "?" in value)


def output_commands() -> list[tuple[str, list[str], str]]:
    """(doc, flags, output name) of every `terraform output ... NAME` in the docs."""
    found = []
    for doc, text in DOCS.items():
        for flags, name in re.findall(r"terraform output((?:\s+-[a-z-]+(?:=\S+)?)*)(?:\s+([a-z_]+))?", text):
            if name:
                found.append((doc, flags.split(), name))
    return found


def test_the_docs_name_outputs_at_all():
    names = {name for _, _, name in output_commands()}
    assert {"webhook_url", "add_secret_version_commands", "dashboard_url", "webhook_audience"} <= names


@pytest.mark.parametrize(("doc", "flags", "name"),
                         [pytest.param(*c, id=f"{c[0]}:{' '.join(c[1] + [c[2]])}") for c in output_commands()])
def test_every_terraform_output_command_names_a_real_output_and_prints_it(doc, flags, name):
    outputs = blocks("output")
    assert name in outputs, f"{doc}: `terraform output {name}`: no such output (outputs.tf has {sorted(outputs)})"
    if "-raw" in flags:
        assert output_is_string(name), f"{doc}: `terraform output -raw {name}` fails: {name} is not a string"


def test_output_types_are_read_right():
    assert output_is_string("webhook_url") and output_is_string("sweep_url") and output_is_string("scheduler_region")
    assert not output_is_string("add_secret_version_commands") and not output_is_string("service_accounts")


def variable_mentions() -> list[tuple[str, str]]:
    """(doc, variable) for every `-var NAME=`, hcl block line and inline `NAME = value` in the docs."""
    found = []
    for doc, text in DOCS.items():
        found += [(doc, n) for n in re.findall(r"-var[= ]['\"]?([a-z_]+)=", text)]
        for block in re.findall(r"```hcl\n(.*?)```", text, re.S):
            found += [(doc, n) for n in re.findall(r"^\s*([a-z_]+)\s+=", block, re.M)]
        found += [(doc, n) for n in re.findall(r"`([a-z][a-z0-9_]*) = [^`]+`", text)]
    return found


def test_the_docs_name_variables_at_all():
    names = {name for _, name in variable_mentions()}
    assert {"deletion_protection", "receive_public_invoker", "receive_invokers", "scheduler_region",
            "ingest_routine_logs", "receive_min_instances"} <= names


@pytest.mark.parametrize(("doc", "name"),
                         [pytest.param(d, n, id=f"{d}:{n}") for d, n in sorted(set(variable_mentions()))])
def test_every_variable_the_docs_set_is_declared(doc, name):
    assert name in blocks("variable"), f"{doc} sets `{name}`, which terraform/variables.tf does not declare"


def test_state_addresses_and_metrics_in_the_docs_exist():
    resources = set(blocks("resource"))
    # Log-based metric names are <prefix>_<kind> (terraform/modules/measure/main.tf); the docs use
    # the default prefix, measure.
    names = (MODULE / "main.tf").read_text(encoding="utf-8")
    kinds = re.search(r"^  metric_names = \{\n    for k in \[([^\]]+)\]", names, re.M)
    assert kinds, "main.tf: local.metric_names not found"
    metrics = {f"measure_{k}" for k in re.findall(r'"([a-z_]+)"', kinds.group(1))}
    for doc, text in DOCS.items():
        for address in re.findall(r"terraform state rm ([a-z0-9_.]+)", text):
            assert address.removeprefix("module.measure.") in resources, \
                f"{doc}: `terraform state rm {address}`: no such resource"
        for metric in re.findall(r"logging\.googleapis\.com/user/([a-z_]+)", text):
            assert metric in metrics, f"{doc}: no log-based metric {metric} (monitoring.tf has {sorted(metrics)})"


# --- terraform.tfvars.example quotes the defaults -----------------------------------------------


def _default(name: str) -> object:
    body = blocks("variable")[name]
    match = re.search(r"^  default\s+=\s+(.+)$", body, re.M)
    assert match, f"{name} has no default"
    text = match.group(1).strip()
    if text == "{}":  # an object of optional(type, default) attributes
        return {k: json.loads(v) for k, v in re.findall(r"^\s+(\w+)\s+=\s+optional\(\w+, ([^)]+)\)", body, re.M)}
    return json.loads(text)


def _hcl_value(text: str) -> object:
    text = text.split("#")[0].strip()
    if text.startswith("{"):
        return {k: json.loads(v) for k, v in re.findall(r"(\w+) = ([^,}]+)", text)}
    return json.loads(text)


def example_defaults() -> list[tuple[str, str]]:
    """The commented `# name = value` lines of the example's "defaults shown" paragraph."""
    example = (TF / "terraform.tfvars.example").read_text(encoding="utf-8")
    section = example.split("defaults shown", 1)[1].split("\n\n", 1)[0]
    shown = re.findall(r"^# ([a-z_]+)\s+=\s+(.+)$", section, re.M)
    return [(name, value) for name, value in shown if name != "labels"]  # labels shows an example, not {}


@pytest.mark.parametrize(("name", "shown"), [pytest.param(n, v, id=n) for n, v in example_defaults()])
def test_example_tfvars_shows_the_real_default(name, shown):
    assert _hcl_value(shown) == _default(name), f"terraform.tfvars.example: {name} default is {_default(name)!r}"


def test_example_tfvars_shows_sends_concurrency_as_deployed():
    shown = dict(example_defaults())
    assert _hcl_value(shown["concurrency"]) == {"receive": 16, "send": 64, "sweep": 1}


# --- who may apply ------------------------------------------------------------------------------

# The predefined role that lets a non-Owner create each kind of resource the module manages.
ROLE_FOR = {
    "google_project_service": "Service Usage Admin",
    "google_service_account": "Service Account Admin",
    "google_service_account_iam_member": "Service Account Admin",
    "google_project_iam_member": "Project IAM Admin",
    "google_pubsub_topic": "Pub/Sub Admin",
    "google_pubsub_topic_iam_member": "Pub/Sub Admin",
    "google_pubsub_subscription": "Pub/Sub Admin",
    "google_pubsub_subscription_iam_member": "Pub/Sub Admin",
    "google_secret_manager_secret": "Secret Manager Admin",
    "google_secret_manager_secret_iam_member": "Secret Manager Admin",
    "google_storage_bucket": "Storage Admin",
    "google_storage_bucket_object": "Storage Admin",
    "google_storage_bucket_iam_member": "Storage Admin",
    "google_project_service_identity": "Service Usage Admin",
    "google_compute_network": "Compute Network Admin",
    "google_compute_address": "Compute Network Admin",
    "google_compute_router": "Compute Network Admin",
    "google_compute_router_nat": "Compute Network Admin",
    "google_vpc_access_connector": "Serverless VPC Access Admin",
    "google_artifact_registry_repository": "Artifact Registry Admin",
    "google_artifact_registry_repository_iam_member": "Artifact Registry Admin",
    "google_cloudfunctions2_function": "Cloud Functions Admin",
    "google_cloud_run_v2_service_iam_member": "Cloud Run Admin",
    "google_cloud_scheduler_job": "Cloud Scheduler Admin",
    "google_logging_metric": "Logging Admin",
    "google_logging_project_exclusion": "Logging Admin",
    "google_monitoring_alert_policy": "Monitoring Editor",
    "google_monitoring_dashboard": "Monitoring Editor",
    "time_sleep": None,  # waits on the applying machine, calls no API
}


def test_the_non_owner_role_list_covers_every_resource_the_module_creates():
    roles = re.search(r"\*\*Owner\*\* of the project \(or has (.*?)\)\.\n", DOCS["docs/deploy.md"], re.S)
    assert roles, "docs/deploy.md: the role list for non-Owners is gone"
    listed = " ".join(roles.group(1).split())
    kinds = {name.split(".")[0] for name in blocks("resource")}
    assert kinds <= set(ROLE_FOR), f"no role known for {kinds - set(ROLE_FOR)}: add it here and to docs/deploy.md"
    missing = {ROLE_FOR[k] for k in kinds if ROLE_FOR[k] and ROLE_FOR[k] not in listed}
    assert not missing, f"docs/deploy.md's role list lacks {missing}"
    assert "Service Account User" in listed  # to attach the service accounts to functions and the job


# --- the cost page is the model's output --------------------------------------------------------


def test_cost_page_quotes_the_model_run_on_the_recorded_figures():
    figures = json.loads(cost.FIGURES.read_text(encoding="utf-8"))
    page = (ROOT / "docs" / "cost.md").read_text(encoding="utf-8")
    assert cost.markdown(figures) in page, "docs/cost.md: paste `python -m benchmarks.cost` output again"


def test_cost_model_bills_what_the_deployment_defaults_to():
    rows = cost.model({})
    assert cost.billed_s(0.03) == pytest.approx(0.1) and cost.billed_s(1.05) == pytest.approx(1.1)
    # ingest_routine_logs defaults to false: request logs dropped, the two lines status reads kept.
    logging = next(r for r in rows if r.item.startswith("Cloud Logging (request logs excluded; status's lines kept)"))
    assert logging.kind == "event" and 0 < logging.busy < next(
        r.busy for r in rows if r.item.startswith("Cloud Logging with ingest_routine_logs = true"))
    assert _default("ingest_routine_logs") is False and _default("receive_min_instances") == 0
    sweep = next(r for r in rows if r.item.startswith("sweep on an empty retry queue"))
    slower = next(r for r in cost.model({"sweep": {"empty_s": 30.0}}) if r.item == sweep.item)
    assert slower.busy > sweep.busy  # a measured empty sweep replaces the bound
    assert cost.min_instance_month() == pytest.approx(30 * 24 * 3600 * (0.0000025 + 0.25 * 0.0000025))
