# One identity per job, each granted only on the resources it touches. No project-level role is
# given to a runtime identity; the build account's one project-level role is writing its build
# logs (see below), and Google's Eventarc service agent gets its own role (readiness.tf).

locals {
  service_accounts = {
    receive   = "${local.prefix} receive (webhook)"
    send      = "${local.prefix} send (delivers events)"
    sweep     = "${local.prefix} sweep (re-sends retries)"
    scheduler = "${local.prefix} scheduler (calls sweep)"
    trigger   = "${local.prefix} Eventarc trigger (calls send)"
    build     = "${local.prefix} Cloud Build (builds the functions)"
  }

  # Who publishes where (docs/design.md data flow).
  publishers = {
    receive_events    = { sa = "receive", topic = "events" }
    send_retry        = { sa = "send", topic = "retry" }
    send_dead_letter  = { sa = "send", topic = "dead_letter" }
    sweep_retry       = { sa = "sweep", topic = "retry" }
    sweep_dead_letter = { sa = "sweep", topic = "dead_letter" }
  }

  # Who reads which secret.
  secret_readers = {
    receive_webhook_tokens = { sa = "receive", secret = "webhook_tokens" }
    send_consumer_key      = { sa = "send", secret = "consumer_key" }
    send_private_key       = { sa = "send", secret = "private_key" }
    sweep_consumer_key     = { sa = "sweep", secret = "consumer_key" }
    sweep_private_key      = { sa = "sweep", secret = "private_key" }
  }

  sa_email  = { for k, sa in google_service_account.this : k => sa.email }
  sa_member = { for k, sa in google_service_account.this : k => sa.member }
}

resource "google_service_account" "this" {
  for_each = local.service_accounts

  project      = var.project_id
  account_id   = "${local.prefix}-${each.key}"
  display_name = each.value
  description  = "Managed by Terraform (measure deployment ${local.prefix})."

  depends_on = [time_sleep.apis_ready]
}

# --- Pub/Sub -----------------------------------------------------------------------------------

resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = local.publishers

  project = var.project_id
  topic   = google_pubsub_topic.this[each.value.topic].name
  role    = "roles/pubsub.publisher"
  member  = local.sa_member[each.value.sa]
}

# Pull, acknowledge and modify ack deadlines (roles/pubsub.subscriber has all three) on the one
# subscription sweep drains.
resource "google_pubsub_subscription_iam_member" "sweep_retry" {
  project      = var.project_id
  subscription = google_pubsub_subscription.this["retry"].name
  role         = "roles/pubsub.subscriber"
  member       = local.sa_member.sweep
}

# --- Secret Manager ----------------------------------------------------------------------------

resource "google_secret_manager_secret_iam_member" "accessor" {
  for_each = local.secret_readers

  project   = var.project_id
  secret_id = google_secret_manager_secret.this[each.value.secret].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = local.sa_member[each.value.sa]
}

# --- Invokers (gen2 functions are Cloud Run services: run.invoker on the service) ---------------

# receive checks the Bearer token itself (docs/design.md, "The webhook"); the telemetry server has no
# Google identity, so Cloud Run must let unauthenticated requests through to it.
resource "google_cloud_run_v2_service_iam_member" "receive_public" {
  # checkov:skip=CKV_GCP_102: public on purpose: receive authenticates every request with its own Bearer tokens.
  # (CKV_GCP_102 inspects google_cloud_run_service_iam_member; tests/test_terraform.py checks that
  # this is the only allUsers grant.) Organisations with Domain Restricted Sharing set
  # receive_public_invoker = false and grant receive_invokers instead.
  count = var.receive_public_invoker ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.this["receive"].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# The telemetry server's own Google identity, where the webhook is not public (or in addition).
resource "google_cloud_run_v2_service_iam_member" "receive_invoker" {
  for_each = toset(var.receive_invokers)

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.this["receive"].service_config[0].service
  role     = "roles/run.invoker"
  member   = each.value
}

resource "google_cloud_run_v2_service_iam_member" "send_trigger" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.this["send"].service_config[0].service
  role     = "roles/run.invoker"
  member   = local.sa_member.trigger
}

resource "google_cloud_run_v2_service_iam_member" "sweep_scheduler" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.this["sweep"].service_config[0].service
  role     = "roles/run.invoker"
  member   = local.sa_member.scheduler
}

# Projects whose Pub/Sub service agent predates 8 April 2021 must let it mint tokens for the
# trigger account, or Eventarc's push to send is refused. Granted on that one account only.
resource "google_service_account_iam_member" "pubsub_token_creator" {
  count = var.legacy_pubsub_service_agent ? 1 : 0

  service_account_id = google_service_account.this["trigger"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = google_project_service_identity.pubsub[0].member
}

# --- Cloud Build -------------------------------------------------------------------------------

# Since mid-2024, new projects no longer give Cloud Build's default account (the Compute Engine
# default account) the rights to build functions, so the first `terraform apply` would fail there.
# measure builds with its own account instead, with the three roles Google's build-account page
# (Cloud Run, "Configure the build service account") lists, each on the narrowest resource:
# - Artifact Registry Writer on measure's own image repository only;
# - Storage Object Admin on the source bucket only: the page names Object Admin "for retrieving the
#   function source from the Cloud Storage bucket" (the provider's "Cloudfunctions2 Basic Builder"
#   example grants it too). Granted on the bucket rather than the project, the build account cannot
#   read or change any other bucket (a Terraform state bucket in the same project, say); what Object
#   Admin adds over Object Viewer (overwrite, delete) reaches only archives Terraform uploads again;
# - Logs Writer, a project-level role by nature (build logs go to the project's Cloud Logging).
resource "google_artifact_registry_repository_iam_member" "build_writer" {
  project    = var.project_id
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = local.sa_member.build
}

resource "google_storage_bucket_iam_member" "build_source" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectAdmin"
  member = local.sa_member.build
}

resource "google_project_iam_member" "build_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = local.sa_member.build
}

# Until this version the build account read every bucket of the project.
moved {
  from = google_project_iam_member.build["roles/logging.logWriter"]
  to   = google_project_iam_member.build_logs
}
