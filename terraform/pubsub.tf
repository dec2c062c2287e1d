# Topics and the two subscriptions measure owns. The subscription that Eventarc creates on
# measure-events for send is managed by Eventarc, not here.

resource "google_pubsub_topic" "this" {
  # checkov:skip=CKV_GCP_83: Google-managed encryption at rest; a customer-managed KMS key is a per-studio choice this module leaves out.
  for_each = local.topics

  project = var.project_id
  name    = each.value
  labels  = local.labels

  # Keep published events for 7 days on measure-events so a bad deployment can be replayed with
  # `gcloud pubsub subscriptions seek`; the other two topics are read only through their subscriptions.
  message_retention_duration = each.key == "events" ? "604800s" : null

  depends_on = [terraform_data.apis_ready]
}

# Retries waiting for sweep. It pulls the due ones, re-sends, and extends the ack deadline of the
# ones not yet due; nothing else reads it. Messages live as long as Pub/Sub allows (31 days), which
# bounds retry_max_age_seconds.
resource "google_pubsub_subscription" "retry" {
  project = var.project_id
  name    = local.subscriptions.retry
  topic   = google_pubsub_topic.this["retry"].id
  labels  = local.labels

  ack_deadline_seconds       = 60
  message_retention_duration = local.max_retention
  retain_acked_messages      = false

  expiration_policy {
    ttl = "" # never expires, however long sweep is idle
  }
}

# Events the Measurement API rejected for good, held for `python -m measure dead-letters list`
# and `replay`. The dead-letter alert fires while this backlog is above zero.
resource "google_pubsub_subscription" "dead_letter" {
  project = var.project_id
  name    = local.subscriptions.dead_letter
  topic   = google_pubsub_topic.this["dead_letter"].id
  labels  = local.labels

  ack_deadline_seconds       = 60
  message_retention_duration = local.max_retention
  retain_acked_messages      = false

  expiration_policy {
    ttl = ""
  }
}
