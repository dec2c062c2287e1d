# Topics and the subscriptions measure owns. The subscription that Eventarc creates on the events
# topic for send is managed by Eventarc, not here.

locals {
  # Published events are kept 7 days on the events topic, so the replay subscription can be
  # seeked back that far (`python -m measure replay --since`), whatever it held before.
  events_retention = "604800s"

  owned_subscriptions = {
    # Retries waiting for sweep. It pulls the due ones, re-sends, and extends the ack deadline of
    # the ones not yet due; nothing else reads it. Messages live as long as Pub/Sub allows (31
    # days), which bounds retry_max_age_seconds.
    retry = { topic = "retry", retention = local.max_retention }
    # Events the Measurement API rejected for good, held for `python -m measure dead-letters list`
    # and `replay`. The dead-letter alert fires while this backlog is above zero.
    dead_letter = { topic = "dead_letter", retention = local.max_retention }
    # Nobody pulls it except `python -m measure replay`, which seeks it to --since and re-delivers a
    # time window (docs/design.md, "Replay subscription"). Its own backlog is never read as such:
    # it keeps as long as the topic does, and a seek brings back what the topic retains.
    replay = { topic = "events", retention = local.events_retention }
  }
}

resource "google_pubsub_topic" "this" {
  # checkov:skip=CKV_GCP_83: Google-managed encryption at rest; a customer-managed KMS key is a per-studio choice this module leaves out.
  for_each = local.topics

  project = var.project_id
  name    = each.value
  labels  = local.labels

  # The other two topics are read only through their subscriptions.
  message_retention_duration = each.key == "events" ? local.events_retention : null

  depends_on = [time_sleep.apis_ready]
}

resource "google_pubsub_subscription" "this" {
  for_each = local.owned_subscriptions

  project = var.project_id
  name    = local.subscriptions[each.key]
  topic   = google_pubsub_topic.this[each.value.topic].id
  labels  = local.labels

  ack_deadline_seconds       = 60
  message_retention_duration = each.value.retention
  retain_acked_messages      = false

  expiration_policy {
    ttl = "" # never expires, however long nobody pulls (sweep idle, no replay for months)
  }
}

moved {
  from = google_pubsub_subscription.retry
  to   = google_pubsub_subscription.this["retry"]
}

moved {
  from = google_pubsub_subscription.dead_letter
  to   = google_pubsub_subscription.this["dead_letter"]
}
