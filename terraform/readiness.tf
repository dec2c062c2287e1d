# What a brand-new project needs before the rest can be created, and the waits Google's
# eventual consistency calls for. Each is a terraform_data (built in, no extra provider) whose
# local-exec runs once, when it is created or its triggers change; later applies skip it.
# Runs on the machine applying, with sh, gcloud and curl (docs/deploy.md, "What you need").
#
#   google_project_service.this ──> apis_ready (sleep) ──> everything that calls an API
#   eventarc_identity (gcloud) ──> eventarc_agent grant ──┐
#   build grants ──────────────────────────────────────────┴─> grants_propagated (sleep) ──> the 3 functions
#   log-based metrics ──> metrics_visible (poll) ──> alert policies, dashboard
#
# tests/test_terraform.py checks this order on `terraform graph`.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  sleep = "sleep ${var.propagation_wait_seconds}"

  # Eventarc's service agent exists only once Google has created it, which it otherwise does lazily
  # on the first trigger and too late for it (terraform-provider-google#25294).
  eventarc_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-eventarc.iam.gserviceaccount.com"

  log_metrics = [
    google_logging_metric.delivery_outcomes.name,
    google_logging_metric.delivery_latency.name,
    google_logging_metric.delivered_event_age.name,
  ]
}

# google_project_service returns once the API is enabled, but "activation is not guaranteed" when it
# does (the provider's guide): the first calls may still answer "has not been used ... or it is disabled".
resource "terraform_data" "apis_ready" {
  triggers_replace = sort(tolist(local.services))

  provisioner "local-exec" {
    command = local.sleep
  }

  depends_on = [google_project_service.this]
}

# google_project_service_identity is in google-beta only; gcloud does the same call and waits for it.
resource "terraform_data" "eventarc_identity" {
  triggers_replace = [var.project_id]

  provisioner "local-exec" {
    command = "gcloud beta services identity create --service=eventarc.googleapis.com --project=${var.project_id} --quiet"
  }

  depends_on = [terraform_data.apis_ready]
}

resource "google_project_iam_member" "eventarc_agent" {
  # checkov:skip=CKV_GCP_49: Google's own Eventarc service agent gets the role Google defines for it (what enabling Eventarc would grant), not a user identity.
  project = var.project_id
  role    = "roles/eventarc.serviceAgent"
  member  = local.eventarc_agent

  depends_on = [terraform_data.eventarc_identity]
}

# IAM grants take effect minutes after they are made; a build that starts before the build account's
# grants have reached Cloud Build fails ("Access to bucket gcf-v2-sources-... denied") and leaves the
# function tainted. The provider's own "Cloudfunctions2 Basic Builder" example waits 60 s here.
resource "terraform_data" "grants_propagated" {
  triggers_replace = concat(
    [for g in google_project_iam_member.build : g.id],
    [google_artifact_registry_repository_iam_member.build_writer.id, google_project_iam_member.eventarc_agent.id],
  )

  provisioner "local-exec" {
    command = local.sleep
  }
}

# An alert on a log-based metric created seconds earlier is refused ("404: Cannot find metric(s) ...
# it could take up to 10 minutes", terraform-provider-google#11102) and the alert create does not
# retry it. Wait until Cloud Monitoring serves each metric's descriptor, at most 10 minutes.
resource "terraform_data" "metrics_visible" {
  triggers_replace = local.log_metrics

  provisioner "local-exec" {
    command = <<-EOT
      set -eu
      for metric in ${join(" ", local.log_metrics)}; do
        url="https://monitoring.googleapis.com/v3/projects/${var.project_id}/metricDescriptors/logging.googleapis.com/user/$metric"
        tries=0
        until [ "$(curl -s -o /dev/null -w '%%{http_code}' -H "Authorization: Bearer $(gcloud auth print-access-token)" -H "x-goog-user-project: ${var.project_id}" "$url")" = 200 ]; do
          tries=$((tries + 1))
          if [ "$tries" -ge 60 ]; then
            echo "Cloud Monitoring does not know logging.googleapis.com/user/$metric after 10 minutes; run terraform apply again." >&2
            exit 1
          fi
          sleep 10
        done
      done
    EOT
  }
}
