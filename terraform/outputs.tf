# The module's outputs, one for one (tests/test_terraform.py checks the two lists stay the same).

output "webhook_url" {
  description = "The URL the telemetry server POSTs events to, with Authorization: Bearer <a line of the measure-webhook-tokens secret>."
  value       = module.measure.webhook_url
}

output "sweep_url" {
  description = "URL of the sweep function (private: only the scheduler service account may invoke it)."
  value       = module.measure.sweep_url
}

output "name_prefix" {
  description = "The prefix every name of this deployment starts with (name_prefix)."
  value       = module.measure.name_prefix
}

output "function_names" {
  description = "Names of the three functions, which are also their Cloud Run service names (resource.labels.service_name in logs)."
  value       = module.measure.function_names
}

output "topics" {
  description = "Pub/Sub topic names: events (receive -> send), retry (-> sweep) and dead_letter."
  value       = module.measure.topics
}

output "subscriptions" {
  description = "Pub/Sub subscriptions owned by measure: retry (pulled by sweep), dead_letter (held for `python -m measure dead-letters`) and replay (on the events topic, seeked by `python -m measure replay`)."
  value       = module.measure.subscriptions
}

output "service_accounts" {
  description = "Email of each service account: receive, send, sweep (runtimes), scheduler (calls sweep), trigger (Eventarc, calls send), build (Cloud Build)."
  value       = module.measure.service_accounts
}

output "secret_ids" {
  description = "Secret Manager secret ids. Terraform creates the containers only; add the values with the add_secret_version_commands."
  value       = module.measure.secret_ids
}

output "add_secret_version_commands" {
  description = "Commands that add each secret's value from stdin, so it never reaches Terraform state, shell history or a file. Tokens: one per line."
  value       = module.measure.add_secret_version_commands
}

output "dashboard_url" {
  description = "Cloud Monitoring dashboard of deliveries, latency, event age and backlogs."
  value       = module.measure.dashboard_url
}

output "source_object" {
  description = "The source archive the functions were built from (gs://bucket/object); its name is the archive's MD5."
  value       = module.measure.source_object
}

output "webhook_audience" {
  description = "Audience of the Google identity token a telemetry server sends in X-Serverless-Authorization when receive_public_invoker is false (the receive service's URL)."
  value       = module.measure.webhook_audience
}

output "scheduler_region" {
  description = "Region of the Cloud Scheduler job <prefix>-sweep (region, unless scheduler_region moves it): `gcloud scheduler jobs run <prefix>-sweep --location=<this>` forces a sweep."
  value       = module.measure.scheduler_region
}

output "log_metrics" {
  description = "Log-based metric names (logging.googleapis.com/user/<name>): delivery_outcomes, delivery_latency, delivered_event_age, type_mismatch."
  value       = module.measure.log_metrics
}

output "egress_ip" {
  description = "The one public IPv4 address send and sweep reach the Measurement API from, to give TUNE for an IP-restricted API key (static_egress_ip = true); null without it."
  value       = module.measure.egress_ip
}

output "alert_policies" {
  description = "Display name of each alert policy this deployment creates, by key (dead_letter_backlog, retry_age, rejected_rate, webhook_4xx and, unless silence_alert_seconds is 0, silence)."
  value       = module.measure.alert_policies
}

output "resource_names" {
  description = "Every name this deployment gives a resource, by kind: what must differ between two deployments in one project (name_prefix makes it so)."
  value       = module.measure.resource_names
}
