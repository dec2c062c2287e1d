# Calls sweep on a schedule with an OIDC token of the scheduler account, the only principal that
# may invoke it. `gcloud scheduler jobs run measure-sweep --location=REGION` forces a sweep now
# (REGION: the scheduler_region output). Cloud Scheduler runs in fewer regions than Cloud Run
# functions; where `region` is not one of them, scheduler_region puts the job in another.

locals {
  scheduler_region = var.scheduler_region == "" ? var.region : var.scheduler_region

  # Cloud Scheduler's locations (its locations page and release notes, read 2026-12-01), checked by
  # the precondition below for scheduler_region, or for `region` when that is empty.
  scheduler_regions = [
    "northamerica-northeast1", "northamerica-northeast2", "southamerica-east1",
    "us-central1", "us-east1", "us-east4", "us-west1", "us-west2", "us-west3", "us-west4",
    "europe-central2", "europe-west1", "europe-west2", "europe-west3", "europe-west4", "europe-west6", "europe-west12",
    "me-central1", "me-central2", "me-west1",
    "asia-east1", "asia-east2", "asia-northeast1", "asia-northeast2", "asia-northeast3",
    "asia-south1", "asia-south2", "asia-southeast1", "asia-southeast2", "asia-southeast3",
    "australia-southeast1",
  ]
}

resource "google_cloud_scheduler_job" "sweep" {
  project     = var.project_id
  region      = local.scheduler_region
  name        = "measure-sweep"
  description = "Re-sends due retries from ${local.subscriptions.retry} (measure sweep)."
  schedule    = var.sweep_schedule
  time_zone   = "Etc/UTC"

  # Give the attempt as long as the function may run, so Scheduler never abandons a working sweep.
  attempt_deadline = "${var.timeout_seconds.sweep}s"

  retry_config {
    retry_count          = 2
    min_backoff_duration = "30s"
    max_backoff_duration = "120s"
    max_doublings        = 2
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.sweep.service_config[0].uri
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode("{}")

    oidc_token {
      service_account_email = local.sa_email.scheduler
      audience              = google_cloudfunctions2_function.sweep.service_config[0].uri
    }
  }

  lifecycle {
    precondition {
      condition     = contains(local.scheduler_regions, local.scheduler_region)
      error_message = "Cloud Scheduler does not run in ${local.scheduler_region}: set scheduler_region to a Cloud Scheduler location near region (e.g. europe-west1, us-central1, asia-northeast1; `gcloud scheduler locations list`)."
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.sweep_scheduler]
}
