# The root a user applies (`cd terraform && terraform apply`): the providers, configured once, and
# one deployment of the module. A studio with several games in one project calls the module once
# per game with its own name_prefix, e.g.
#
#   module "measure" {
#     source   = "./modules/measure"
#     for_each = { game1 = "measure", game2 = "measure-game2" }
#     ...
#     name_prefix = each.value
#   }
#
# (tests/two_instances.tftest.hcl of the module plans exactly that).

# The credentials are whatever the provider finds (docs/deploy.md): Application Default Credentials
# on a laptop, GOOGLE_APPLICATION_CREDENTIALS pointing at a service-account key in CI, or
# GOOGLE_IMPERSONATE_SERVICE_ACCOUNT. user_project_override bills every API call's quota to the
# project being deployed, not to the project of the credentials (a user's ADC has none of its own,
# and `gcloud auth application-default set-quota-project` does not reach the provider,
# terraform-provider-google#24500).
provider "google" {
  project               = var.project_id
  region                = var.region
  billing_project       = var.project_id
  user_project_override = true
}

provider "google-beta" {
  project               = var.project_id
  region                = var.region
  billing_project       = var.project_id
  user_project_override = true
}

module "measure" {
  source = "./modules/measure"

  # The repository this root sits in: what the functions are built from.
  source_dir = "${path.module}/.."

  name_prefix                 = var.name_prefix
  project_id                  = var.project_id
  region                      = var.region
  scheduler_region            = var.scheduler_region
  advertiser_id               = var.advertiser_id
  site_ids                    = var.site_ids
  endpoint_override           = var.endpoint_override
  sweep_schedule              = var.sweep_schedule
  retry_max_age_seconds       = var.retry_max_age_seconds
  event_max_age_seconds       = var.event_max_age_seconds
  secret_ttl_seconds          = var.secret_ttl_seconds
  max_instances               = var.max_instances
  concurrency                 = var.concurrency
  cpu                         = var.cpu
  memory                      = var.memory
  timeout_seconds             = var.timeout_seconds
  sweep_budget_seconds        = var.sweep_budget_seconds
  notification_channels       = var.notification_channels
  retry_age_alert_seconds     = var.retry_age_alert_seconds
  rejected_alert_threshold    = var.rejected_alert_threshold
  labels                      = var.labels
  deletion_protection         = var.deletion_protection
  legacy_pubsub_service_agent = var.legacy_pubsub_service_agent
  receive_public_invoker      = var.receive_public_invoker
  receive_invokers            = var.receive_invokers
  receive_min_instances       = var.receive_min_instances
  ingest_routine_logs         = var.ingest_routine_logs
  propagation_wait_seconds    = var.propagation_wait_seconds
  api_max_rps                 = var.api_max_rps
  static_egress_ip            = var.static_egress_ip
  egress_connector_cidr       = var.egress_connector_cidr
  silence_alert_seconds       = var.silence_alert_seconds
  webhook_4xx_alert_threshold = var.webhook_4xx_alert_threshold
  log_metric_wait_seconds     = var.log_metric_wait_seconds
}

# Until this version everything below lived in this root. These moves keep an existing deployment's
# state: a plan after upgrading creates nothing new that already exists.

moved {
  from = google_service_account.this
  to   = module.measure.google_service_account.this
}

moved {
  from = google_pubsub_topic_iam_member.publisher
  to   = module.measure.google_pubsub_topic_iam_member.publisher
}

moved {
  from = google_pubsub_subscription_iam_member.sweep_retry
  to   = module.measure.google_pubsub_subscription_iam_member.sweep_retry
}

moved {
  from = google_secret_manager_secret_iam_member.accessor
  to   = module.measure.google_secret_manager_secret_iam_member.accessor
}

moved {
  from = google_cloud_run_v2_service_iam_member.receive_public
  to   = module.measure.google_cloud_run_v2_service_iam_member.receive_public
}

moved {
  from = google_cloud_run_v2_service_iam_member.receive_invoker
  to   = module.measure.google_cloud_run_v2_service_iam_member.receive_invoker
}

moved {
  from = google_cloud_run_v2_service_iam_member.send_trigger
  to   = module.measure.google_cloud_run_v2_service_iam_member.send_trigger
}

moved {
  from = google_cloud_run_v2_service_iam_member.sweep_scheduler
  to   = module.measure.google_cloud_run_v2_service_iam_member.sweep_scheduler
}

moved {
  from = google_service_account_iam_member.pubsub_token_creator
  to   = module.measure.google_service_account_iam_member.pubsub_token_creator
}

moved {
  from = google_artifact_registry_repository_iam_member.build_writer
  to   = module.measure.google_artifact_registry_repository_iam_member.build_writer
}

moved {
  from = google_project_iam_member.build
  to   = module.measure.google_project_iam_member.build
}

moved {
  from = google_cloudfunctions2_function.receive
  to   = module.measure.google_cloudfunctions2_function.receive
}

moved {
  from = google_cloudfunctions2_function.send
  to   = module.measure.google_cloudfunctions2_function.send
}

moved {
  from = google_cloudfunctions2_function.sweep
  to   = module.measure.google_cloudfunctions2_function.sweep
}

moved {
  from = google_pubsub_topic.this
  to   = module.measure.google_pubsub_topic.this
}

moved {
  from = google_pubsub_subscription.retry
  to   = module.measure.google_pubsub_subscription.retry
}

moved {
  from = google_pubsub_subscription.dead_letter
  to   = module.measure.google_pubsub_subscription.dead_letter
}

moved {
  from = google_logging_metric.delivery_outcomes
  to   = module.measure.google_logging_metric.delivery_outcomes
}

moved {
  from = google_logging_metric.delivery_latency
  to   = module.measure.google_logging_metric.delivery_latency
}

moved {
  from = google_logging_metric.delivered_event_age
  to   = module.measure.google_logging_metric.delivered_event_age
}

moved {
  from = google_monitoring_alert_policy.dead_letter_backlog
  to   = module.measure.google_monitoring_alert_policy.dead_letter_backlog
}

moved {
  from = google_monitoring_alert_policy.retry_age
  to   = module.measure.google_monitoring_alert_policy.retry_age
}

moved {
  from = google_monitoring_alert_policy.rejected_rate
  to   = module.measure.google_monitoring_alert_policy.rejected_rate
}

moved {
  from = google_monitoring_dashboard.measure
  to   = module.measure.google_monitoring_dashboard.measure
}

moved {
  from = google_storage_bucket.source
  to   = module.measure.google_storage_bucket.source
}

moved {
  from = google_storage_bucket_object.source
  to   = module.measure.google_storage_bucket_object.source
}

moved {
  from = google_artifact_registry_repository.functions
  to   = module.measure.google_artifact_registry_repository.functions
}

moved {
  from = google_secret_manager_secret.this
  to   = module.measure.google_secret_manager_secret.this
}

moved {
  from = google_cloud_scheduler_job.sweep
  to   = module.measure.google_cloud_scheduler_job.sweep
}

moved {
  from = google_logging_project_exclusion.routine
  to   = module.measure.google_logging_project_exclusion.routine
}

moved {
  from = google_project_service.this
  to   = module.measure.google_project_service.this
}

# The unconditional Eventarc agent grant of earlier versions: forgotten, not revoked, since other
# triggers in the project rely on the same grant (the module makes a conditional one of its own).
removed {
  from = google_project_iam_member.eventarc_agent

  lifecycle {
    destroy = false
  }
}
