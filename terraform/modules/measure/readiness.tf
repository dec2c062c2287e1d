# What a brand-new project needs before the rest can be created, and the waits Google's eventual
# consistency calls for. Everything here runs through the providers with the credentials they were
# given (ADC, a CI service-account key, impersonation): no shell command, nothing run on the machine
# that applies, no gcloud.
#
#   google_project_service.this ──> apis_ready (time_sleep) ──> everything that calls an API
#   eventarc identity (google-beta) ──> eventarc_agent grant ──┐
#   build grants ──────────────────────────────────────────────┴─> grants_propagated (time_sleep) ──> the 3 functions
#   log-based metrics ──> metrics_visible (time_sleep) ──> the alert on them, dashboard
#
# tests/test_terraform.py checks this order on `terraform graph`.

# google_project_service returns once the API is enabled, but "activation is not guaranteed" when it
# does (the provider's guide): the first calls may still answer "has not been used ... or it is disabled".
# A time_sleep waits on create only (and again if the API list changes), not on later applies.
resource "time_sleep" "apis_ready" {
  create_duration = "${var.propagation_wait_seconds}s"
  triggers        = { services = join(",", sort(tolist(local.services))) }

  depends_on = [google_project_service.this]
}

# Eventarc's service agent exists only once Google has created it, which it otherwise does lazily
# on the first trigger and too late for it (terraform-provider-google#25294, #14584). Its email
# (service-PROJECT_NUMBER@gcp-sa-eventarc...) comes back from the call, so no plan-time project
# lookup (data "google_project") is needed for the project number. Destroying this resource is a
# no-op: the agent stays, as Google keeps it for every other trigger.
resource "google_project_service_identity" "eventarc" {
  provider = google-beta

  project = var.project_id
  service = "eventarc.googleapis.com"

  depends_on = [time_sleep.apis_ready]
}

# Pub/Sub's service agent, only where it needs the Token Creator grant (iam.tf).
resource "google_project_service_identity" "pubsub" {
  provider = google-beta
  count    = var.legacy_pubsub_service_agent ? 1 : 0

  project = var.project_id
  service = "pubsub.googleapis.com"

  depends_on = [time_sleep.apis_ready]
}

# Google grants roles/eventarc.serviceAgent to the agent itself when the project's first Eventarc
# resource is created ("granted by default ... if removed you must restore it", Eventarc's
# roles page), but that is the race above. So measure grants it as well, before send's trigger,
# as a binding of its own: a conditional binding titled after this deployment. An IAM member is
# non-authoritative, yet destroying an unconditional one would revoke the role for the
# project's every other trigger (Google's own grant is the same role and member, IAM keeps
# no owner). A binding with a condition is a distinct (role, condition) entry: destroy removes
# this deployment's entry and leaves Google's, and each deployment in the project has its own.
# The condition holds until the year 2999: a condition that is always true, in the one form IAM
# accepts on every role (request.time).
resource "google_project_iam_member" "eventarc_agent" {
  # checkov:skip=CKV_GCP_49: Google's own Eventarc service agent gets the role Google defines for it (what Eventarc grants itself), not a user identity.
  project = var.project_id
  role    = "roles/eventarc.serviceAgent"
  member  = google_project_service_identity.eventarc.member

  condition {
    title       = "${local.prefix} Eventarc trigger"
    description = "Granted by measure deployment ${local.prefix} before its trigger exists; Google's own unconditional grant is left alone."
    expression  = "request.time < timestamp(\"2999-01-01T00:00:00Z\")"
  }
}

# IAM grants take effect minutes after they are made; a build that starts before the build account's
# grants have reached Cloud Build fails ("Access to bucket ... denied") and leaves the function
# tainted. The provider's own "Cloudfunctions2 Basic Builder" example waits 60 s here.
resource "time_sleep" "grants_propagated" {
  create_duration = "${var.propagation_wait_seconds}s"
  triggers = {
    grants = join(",", [
      google_project_iam_member.build_logs.id,
      google_storage_bucket_iam_member.build_source.id,
      google_artifact_registry_repository_iam_member.build_writer.id,
      google_project_iam_member.eventarc_agent.id,
    ])
  }
}

# An alert on a log-based metric created seconds earlier is refused ("404: Cannot find metric(s) ...
# it could take up to 10 minutes", terraform-provider-google#11102) and the alert create does not
# retry it. There is no API call that waits for it that a provider offers, so this waits a fixed
# time once per new metric (usually enough: a minute or two); should the alert still be refused,
# `terraform apply` again picks up from there.
resource "time_sleep" "metrics_visible" {
  create_duration = "${var.log_metric_wait_seconds}s"
  triggers = {
    outcomes      = google_logging_metric.delivery_outcomes.id
    latency       = google_logging_metric.delivery_latency.id
    age           = google_logging_metric.delivered_event_age.id
    type_mismatch = google_logging_metric.type_mismatch.id
  }
}
