output "webhook_url" {
  description = "The URL the telemetry server POSTs events to, with Authorization: Bearer <a line of the measure-webhook-tokens secret>."
  value       = "${google_cloudfunctions2_function.this["receive"].service_config[0].uri}/measure"
}

output "sweep_url" {
  description = "URL of the sweep function (private: only the scheduler service account may invoke it)."
  value       = google_cloudfunctions2_function.this["sweep"].service_config[0].uri
}

output "name_prefix" {
  description = "The prefix every name of this deployment starts with (name_prefix)."
  value       = local.prefix
}

output "function_names" {
  description = "Names of the three functions, which are also their Cloud Run service names (resource.labels.service_name in logs)."
  value       = local.function_names
}

output "topics" {
  description = "Pub/Sub topic names: events (receive -> send), retry (-> sweep) and dead_letter."
  value       = { for k, t in google_pubsub_topic.this : k => t.name }
}

output "subscriptions" {
  description = "Pub/Sub subscriptions owned by measure: retry (pulled by sweep), dead_letter (held for `python -m measure dead-letters`) and replay (on the events topic, seeked by `python -m measure replay`)."
  value       = { for k, s in google_pubsub_subscription.this : k => s.name }
}

output "service_accounts" {
  description = "Email of each service account: receive, send, sweep (runtimes), scheduler (calls sweep), trigger (Eventarc, calls send), build (Cloud Build)."
  value       = local.sa_email
}

output "secret_ids" {
  description = "Secret Manager secret ids. Terraform creates the containers only; add the values with the add_secret_version_commands."
  value       = { for k, s in google_secret_manager_secret.this : k => s.secret_id }
}

output "add_secret_version_commands" {
  description = "Commands that add each secret's value from stdin, so it never reaches Terraform state, shell history or a file. Tokens: one per line."
  value = {
    for k, s in google_secret_manager_secret.this :
    k => "gcloud secrets versions add ${s.secret_id} --project=${var.project_id} --data-file=-"
  }
}

output "dashboard_url" {
  description = "Cloud Monitoring dashboard of deliveries, latency, event age and backlogs."
  value       = "https://console.cloud.google.com/monitoring/dashboards/builder/${basename(google_monitoring_dashboard.measure.id)}?project=${var.project_id}"
}

output "source_object" {
  description = "The source archive the functions were built from (gs://bucket/object); its name is the archive's MD5."
  value       = "gs://${google_storage_bucket.source.name}/${google_storage_bucket_object.source.name}"
}

output "webhook_audience" {
  description = "Audience of the Google identity token a telemetry server sends in X-Serverless-Authorization when receive_public_invoker is false (the receive service's URL)."
  value       = google_cloudfunctions2_function.this["receive"].service_config[0].uri
}

output "scheduler_region" {
  description = "Region of the Cloud Scheduler job <prefix>-sweep (region, unless scheduler_region moves it): `gcloud scheduler jobs run <prefix>-sweep --location=<this>` forces a sweep."
  value       = local.scheduler_region
}

output "log_metrics" {
  description = "Log-based metric names (logging.googleapis.com/user/<name>): delivery_outcomes, delivery_latency, delivered_event_age, type_mismatch."
  value       = local.metric_names
}

output "egress_ip" {
  description = "The one public IPv4 address send and sweep reach the Measurement API from, to give TUNE for an IP-restricted API key (static_egress_ip = true); null without it."
  value       = var.static_egress_ip ? google_compute_address.egress[0].address : null
}

output "alert_policies" {
  description = "Display name of each alert policy this deployment creates, by key (dead_letter_backlog, retry_age, rejected_rate, webhook_4xx and, unless silence_alert_seconds is 0, silence)."
  value       = local.alert_names
}

output "resource_names" {
  description = "Every name this deployment gives a resource, by kind: what must differ between two deployments in one project (name_prefix makes it so)."
  value = {
    functions        = values(local.function_names)
    topics           = values(local.topics)
    subscriptions    = values(local.subscriptions)
    secrets          = values(local.secrets)
    service_accounts = [for k, sa in google_service_account.this : sa.account_id]
    bucket           = [google_storage_bucket.source.name]
    repository       = [google_artifact_registry_repository.functions.repository_id]
    log_metrics      = values(local.metric_names)
    alert_policies   = values(local.alert_names)
    dashboard        = [local.prefix]
    scheduler_job    = [google_cloud_scheduler_job.sweep.name]
    log_exclusion    = [for e in google_logging_project_exclusion.routine : e.name]
    egress           = var.static_egress_ip ? [local.egress_name] : []
    source_archive   = [data.archive_file.source.output_path]
  }
}
