# Calls sweep on a schedule with an OIDC token of the scheduler account, the only principal that
# may invoke it. `gcloud scheduler jobs run <prefix>-sweep --location=REGION` forces a sweep now
# (REGION: the scheduler_region output). Cloud Scheduler runs in fewer regions than Cloud Run
# functions; where `region` is not one of them, scheduler_region puts the job in another. No list
# of its locations is kept here (it would go stale with each new one): the first apply in a
# location without Cloud Scheduler is refused by the API, and docs/deploy.md says what to set.

locals {
  scheduler_region = var.scheduler_region == "" ? var.region : var.scheduler_region
}

resource "google_cloud_scheduler_job" "sweep" {
  project     = var.project_id
  region      = local.scheduler_region
  name        = "${local.prefix}-sweep"
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
    uri         = google_cloudfunctions2_function.this["sweep"].service_config[0].uri
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode("{}")

    oidc_token {
      service_account_email = local.sa_email.scheduler
      audience              = google_cloudfunctions2_function.this["sweep"].service_config[0].uri
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.sweep_scheduler]
}
