output "webhook_url" {
  description = "The URL the telemetry server POSTs events to, with Authorization: Bearer <a line of the measure-webhook-tokens secret>."
  value       = "${google_cloudfunctions2_function.receive.service_config[0].uri}/measure"
}

output "sweep_url" {
  description = "URL of the sweep function (private: only the scheduler service account may invoke it)."
  value       = google_cloudfunctions2_function.sweep.service_config[0].uri
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
  description = "Pub/Sub subscriptions owned by measure: retry (pulled by sweep) and dead_letter (held for `python -m measure dead-letters`)."
  value = {
    retry       = google_pubsub_subscription.retry.name
    dead_letter = google_pubsub_subscription.dead_letter.name
  }
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
  value       = google_cloudfunctions2_function.receive.service_config[0].uri
}

output "scheduler_region" {
  description = "Region of the Cloud Scheduler job measure-sweep (region, unless scheduler_region moves it): `gcloud scheduler jobs run measure-sweep --location=<this>` forces a sweep."
  value       = local.scheduler_region
}
