# Calls sweep on a schedule with an OIDC token of the scheduler account, the only principal that
# may invoke it. `gcloud scheduler jobs run measure-sweep --location=REGION` forces a sweep now.

resource "google_cloud_scheduler_job" "sweep" {
  project     = var.project_id
  region      = var.region
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

  depends_on = [google_cloud_run_v2_service_iam_member.sweep_scheduler]
}
