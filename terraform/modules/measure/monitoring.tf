# Issue 8.3: metrics from the functions' structured logs, a dashboard, and alerts.
#
# send and sweep write one JSON line per delivery attempt (measure/logs.py); Cloud Run turns it into
# a log entry of resource.type "cloud_run_revision", resource.labels.service_name = the function
# name, with jsonPayload fields:
#   message = "delivery", component = "send" | "sweep",
#   outcome = "delivered" | "duplicate" | "rejected" | "transient",
#   event_name, latency_ms (the Measurement API call), event_age_s (now - the event's time_stamp).
# When TUNE resolves another event type than the action sent, they also write a WARNING line
# message = "type mismatch" with action and site_event_type (the events guide's "Potential
# Conflicts"), counted by the metric <prefix>_type_mismatch.
# Every alert's documentation points at docs/runbook.md; every alert name starts with the prefix.

locals {
  delivery_log_filter = join("\n", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=(\"${local.function_names.send}\" OR \"${local.function_names.sweep}\")",
    "jsonPayload.message=\"delivery\"",
  ])

  metric_prefix = "logging.googleapis.com/user/"

  runbook = "docs/runbook.md in the measure repository"

  # The alert policies that always exist (silence is optional), for the outputs.
  alerts = {
    dead_letter_backlog = google_monitoring_alert_policy.dead_letter_backlog
    retry_age           = google_monitoring_alert_policy.retry_age
    rejected_rate       = google_monitoring_alert_policy.rejected_rate
    webhook_4xx         = google_monitoring_alert_policy.webhook_4xx
  }
  alert_names = merge(
    { for k, p in local.alerts : k => p.display_name },
    { for p in google_monitoring_alert_policy.silence : "silence" => p.display_name },
  )

  pubsub_metric = {
    backlog    = "pubsub.googleapis.com/subscription/num_undelivered_messages"
    oldest_age = "pubsub.googleapis.com/subscription/oldest_unacked_message_age"
  }

  retry_subscription_filter       = "resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${local.subscriptions.retry}\""
  dead_letter_subscription_filter = "resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${local.subscriptions.dead_letter}\""

  # Accepted events: receive publishes each to the events topic (successful publish requests).
  events_published_filter = join(" AND ", [
    "resource.type=\"pubsub_topic\"",
    "resource.labels.topic_id=\"${local.topics.events}\"",
    "metric.type=\"pubsub.googleapis.com/topic/send_request_count\"",
    "metric.labels.response_class=\"success\"",
  ])

  webhook_requests_filter = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${local.function_names.receive}\"",
    "metric.type=\"run.googleapis.com/request_count\"",
  ])
}

# --- Log-based metrics -------------------------------------------------------------------------

resource "google_logging_metric" "delivery_outcomes" {
  project     = var.project_id
  name        = local.metric_names.delivery_outcomes
  description = "measure: Measurement API delivery attempts, by outcome and component."
  filter      = local.delivery_log_filter

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${local.prefix} delivery outcomes"

    labels {
      key         = "outcome"
      value_type  = "STRING"
      description = "delivered, duplicate, rejected or transient"
    }
    labels {
      key         = "component"
      value_type  = "STRING"
      description = "send (first attempt) or sweep (retry)"
    }
  }

  label_extractors = {
    outcome   = "EXTRACT(jsonPayload.outcome)"
    component = "EXTRACT(jsonPayload.component)"
  }

  depends_on = [time_sleep.apis_ready]
}

resource "google_logging_metric" "delivery_latency" {
  project         = var.project_id
  name            = local.metric_names.delivery_latency
  description     = "measure: duration of each Measurement API call in milliseconds."
  filter          = "${local.delivery_log_filter}\njsonPayload.latency_ms>=0"
  value_extractor = "EXTRACT(jsonPayload.latency_ms)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "ms"
    display_name = "${local.prefix} delivery latency"

    labels {
      key        = "outcome"
      value_type = "STRING"
    }
    labels {
      key        = "component"
      value_type = "STRING"
    }
  }

  label_extractors = {
    outcome   = "EXTRACT(jsonPayload.outcome)"
    component = "EXTRACT(jsonPayload.component)"
  }

  # 5 ms .. ~82 s, doubling.
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 15
      growth_factor      = 2
      scale              = 5
    }
  }

  depends_on = [time_sleep.apis_ready]
}

resource "google_logging_metric" "delivered_event_age" {
  project         = var.project_id
  name            = local.metric_names.delivered_event_age
  description     = "measure: age of each delivered event (now minus its time_stamp) in seconds."
  filter          = "${local.delivery_log_filter}\njsonPayload.outcome=(\"delivered\" OR \"duplicate\")\njsonPayload.event_age_s>=0"
  value_extractor = "EXTRACT(jsonPayload.event_age_s)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "s"
    display_name = "${local.prefix} delivered event age"

    labels {
      key        = "component"
      value_type = "STRING"
    }
  }

  label_extractors = {
    component = "EXTRACT(jsonPayload.component)"
  }

  # 1 s, 5 s, 15 s, 30 s, 1 min, 2 min, 5 min, 10 min, 30 min, 1 h, 2 h, 6 h, 12 h, 1 d, 3 d, 7 d, 14 d, 31 d.
  bucket_options {
    explicit_buckets {
      bounds = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400, 259200, 604800, 1209600, 2678400]
    }
  }

  depends_on = [time_sleep.apis_ready]
}

resource "google_logging_metric" "type_mismatch" {
  project     = var.project_id
  name        = local.metric_names.type_mismatch
  description = "measure: deliveries TUNE resolved to another event type than the action sent (WARNING \"type mismatch\")."
  filter = join("\n", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=(\"${local.function_names.send}\" OR \"${local.function_names.sweep}\")",
    "jsonPayload.message=\"type mismatch\"",
  ])

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${local.prefix} type mismatches"

    labels {
      key         = "action"
      value_type  = "STRING"
      description = "the action measure sent"
    }
    labels {
      key         = "site_event_type"
      value_type  = "STRING"
      description = "the event type TUNE resolved"
    }
  }

  label_extractors = {
    action          = "EXTRACT(jsonPayload.action)"
    site_event_type = "EXTRACT(jsonPayload.site_event_type)"
  }

  depends_on = [time_sleep.apis_ready]
}

# --- Alerts --------------------------------------------------------------------------------------

resource "google_monitoring_alert_policy" "dead_letter_backlog" {
  project               = var.project_id
  display_name          = "${local.prefix}: dead-lettered events waiting"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "${local.subscriptions.dead_letter} backlog above 0"
    condition_threshold {
      filter          = "${local.dead_letter_subscription_filter} AND metric.type=\"${local.pubsub_metric.backlog}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    subject   = "${local.prefix}: events were dead-lettered"
    mime_type = "text/markdown"
    content   = <<-EOT
      The Measurement API rejected one or more events for good, or their retries ran past
      MEASURE_RETRY_MAX_AGE. They wait in Pub/Sub subscription `${local.subscriptions.dead_letter}` (kept 31 days)
      and are not attributed until replayed. Look with `python -m measure dead-letters list`, fix the cause,
      then `python -m measure dead-letters replay`. The incident closes when the backlog is empty.
      Runbook: "Dead-letter backlog" in ${local.runbook}.
    EOT
  }

  depends_on = [google_pubsub_subscription.this["dead_letter"], time_sleep.apis_ready]
}

resource "google_monitoring_alert_policy" "retry_age" {
  project               = var.project_id
  display_name          = "${local.prefix}: retries waiting too long"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "oldest message in ${local.subscriptions.retry} older than ${var.retry_age_alert_seconds}s"
    condition_threshold {
      filter          = "${local.retry_subscription_filter} AND metric.type=\"${local.pubsub_metric.oldest_age}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.retry_age_alert_seconds
      duration        = "300s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    subject   = "${local.prefix}: deliveries have been failing for hours"
    mime_type = "text/markdown"
    content   = <<-EOT
      An event has been waiting for a retry in `${local.subscriptions.retry}` for more than
      ${var.retry_age_alert_seconds} seconds: the Measurement API keeps failing transiently (timeouts, 5xx, 429)
      or sweep is not running. Events are dead-lettered once older than MEASURE_RETRY_MAX_AGE.
      Runbook: "Retries waiting too long" in ${local.runbook}.
    EOT
  }

  depends_on = [google_pubsub_subscription.this["retry"], time_sleep.apis_ready]
}

resource "google_monitoring_alert_policy" "rejected_rate" {
  project               = var.project_id
  display_name          = "${local.prefix}: Measurement API rejecting events"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "more than ${var.rejected_alert_threshold} rejected deliveries in 5 minutes"
    condition_threshold {
      filter          = "resource.type=\"cloud_run_revision\" AND metric.type=\"${local.metric_prefix}${google_logging_metric.delivery_outcomes.name}\" AND metric.labels.outcome=\"rejected\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.rejected_alert_threshold
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    subject   = "${local.prefix}: events are being rejected"
    mime_type = "text/markdown"
    content   = <<-EOT
      The Measurement API answered "rejected" (a permanent error) to more than ${var.rejected_alert_threshold}
      deliveries in 5 minutes. Usual causes: a wrong advertiser id, site id, consumer key or private key, or
      a field the API refuses. Rejected events are dead-lettered and can be replayed once fixed.
      Runbook: "Rejected deliveries" in ${local.runbook}.
    EOT
  }

  depends_on = [time_sleep.metrics_visible]
}

# Issue 21: a broken telemetry server looks like a quiet day unless something notices the quiet.
# Built on Pub/Sub's own metric, which exists from the first publish (no log metric to wait for).
# An absence condition fires only for a series it has seen: it starts watching after the first
# accepted event.
resource "google_monitoring_alert_policy" "silence" {
  count = var.silence_alert_seconds > 0 ? 1 : 0

  project               = var.project_id
  display_name          = "${local.prefix}: no events received"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "nothing published to ${local.topics.events} for ${var.silence_alert_seconds}s"
    condition_absent {
      filter   = local.events_published_filter
      duration = "${var.silence_alert_seconds}s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    subject   = "${local.prefix}: the webhook has accepted no event for ${var.silence_alert_seconds} seconds"
    mime_type = "text/markdown"
    content   = <<-EOT
      Nothing was published to `${local.topics.events}` for ${var.silence_alert_seconds} seconds: either the game is
      quiet, or the telemetry server stopped calling `${local.function_names.receive}` (or calls it and is refused).
      Runbook: "Webhook silent" in ${local.runbook}.
    EOT
  }

  depends_on = [google_pubsub_topic.this, time_sleep.apis_ready]
}

resource "google_monitoring_alert_policy" "webhook_4xx" {
  project               = var.project_id
  display_name          = "${local.prefix}: webhook refusing requests"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "more than ${var.webhook_4xx_alert_threshold} 4xx answers from ${local.function_names.receive} in 5 minutes"
    condition_threshold {
      filter          = "${local.webhook_requests_filter} AND metric.labels.response_code_class=\"4xx\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.webhook_4xx_alert_threshold
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    subject   = "${local.prefix}: the webhook is refusing requests"
    mime_type = "text/markdown"
    content   = <<-EOT
      `${local.function_names.receive}` answered more than ${var.webhook_4xx_alert_threshold} requests with a 4xx status
      in 5 minutes: a wrong or retired webhook token (401), events the webhook refuses (400: an unknown field, a
      platform/storefront not in site_ids), or (403) a caller without run.invoker. Refused events are not published.
      Runbook: "Webhook refusing requests" in ${local.runbook}.
    EOT
  }

  depends_on = [google_cloudfunctions2_function.this, time_sleep.apis_ready]
}

# --- Dashboard -----------------------------------------------------------------------------------

locals {
  outcomes_metric = "metric.type=\"${local.metric_prefix}${google_logging_metric.delivery_outcomes.name}\" AND resource.type=\"cloud_run_revision\""
  mismatch_metric = "metric.type=\"${local.metric_prefix}${google_logging_metric.type_mismatch.name}\" AND resource.type=\"cloud_run_revision\""
  latency_metric  = "metric.type=\"${local.metric_prefix}${google_logging_metric.delivery_latency.name}\" AND resource.type=\"cloud_run_revision\""
  age_metric      = "metric.type=\"${local.metric_prefix}${google_logging_metric.delivered_event_age.name}\" AND resource.type=\"cloud_run_revision\""

  percentile_sets = {
    for metric_name, filter in { latency = local.latency_metric, age = local.age_metric } : metric_name => [
      for p in ["50", "95", "99"] : {
        plotType       = "LINE"
        targetAxis     = "Y1"
        legendTemplate = "p${p}"
        timeSeriesQuery = {
          timeSeriesFilter = {
            filter = filter
            aggregation = {
              alignmentPeriod    = "60s"
              perSeriesAligner   = "ALIGN_DELTA"
              crossSeriesReducer = "REDUCE_PERCENTILE_${p}"
            }
          }
        }
      }
    ]
  }

  dashboard_tiles = [
    {
      title = "Delivery outcomes (per second)"
      chart = {
        dataSets = [{
          plotType   = "STACKED_BAR"
          targetAxis = "Y1"
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter = local.outcomes_metric
              aggregation = {
                alignmentPeriod    = "60s"
                perSeriesAligner   = "ALIGN_RATE"
                crossSeriesReducer = "REDUCE_SUM"
                groupByFields      = ["metric.label.outcome"]
              }
            }
          }
        }]
        yAxis = { label = "attempts/s", scale = "LINEAR" }
      }
    },
    {
      title = "Measurement API latency (ms)"
      chart = {
        dataSets = local.percentile_sets.latency
        yAxis    = { label = "ms", scale = "LINEAR" }
      }
    },
    {
      title = "Event age at delivery (s)"
      chart = {
        dataSets = local.percentile_sets.age
        yAxis    = { label = "s", scale = "LOG10" }
      }
    },
    {
      title = "Retry backlog (${local.subscriptions.retry})"
      chart = {
        dataSets = [{
          plotType   = "LINE"
          targetAxis = "Y1"
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter      = "${local.retry_subscription_filter} AND metric.type=\"${local.pubsub_metric.backlog}\""
              aggregation = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_MAX" }
            }
          }
        }]
        yAxis = { label = "messages", scale = "LINEAR" }
      }
    },
    {
      title = "Oldest retry (s)"
      chart = {
        dataSets = [{
          plotType   = "LINE"
          targetAxis = "Y1"
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter      = "${local.retry_subscription_filter} AND metric.type=\"${local.pubsub_metric.oldest_age}\""
              aggregation = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_MAX" }
            }
          }
        }]
        thresholds = [{ value = var.retry_age_alert_seconds, targetAxis = "Y1", label = "alert" }]
        yAxis      = { label = "s", scale = "LINEAR" }
      }
    },
    {
      title = "Dead-letter backlog (${local.subscriptions.dead_letter})"
      chart = {
        dataSets = [{
          plotType   = "LINE"
          targetAxis = "Y1"
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter      = "${local.dead_letter_subscription_filter} AND metric.type=\"${local.pubsub_metric.backlog}\""
              aggregation = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_MAX" }
            }
          }
        }]
        # value 0 is left out: the API drops zero values, and the next plan would put it back.
        thresholds = [{ targetAxis = "Y1", label = "alert above 0" }]
        yAxis      = { label = "messages", scale = "LINEAR" }
      }
    },
    {
      title = "Function requests by response class"
      chart = {
        dataSets = [{
          plotType   = "LINE"
          targetAxis = "Y1"
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter = join(" AND ", [
                "metric.type=\"run.googleapis.com/request_count\"",
                "resource.type=\"cloud_run_revision\"",
                "resource.labels.service_name=(${join(" OR ", [for n in values(local.function_names) : "\"${n}\""])})",
              ])
              aggregation = {
                alignmentPeriod    = "60s"
                perSeriesAligner   = "ALIGN_RATE"
                crossSeriesReducer = "REDUCE_SUM"
                groupByFields      = ["resource.label.service_name", "metric.label.response_code_class"]
              }
            }
          }
        }]
        yAxis = { label = "requests/s", scale = "LINEAR" }
      }
    },
    {
      title = "Type mismatches (TUNE resolved another type, per second)"
      chart = {
        dataSets = [{
          plotType   = "STACKED_BAR"
          targetAxis = "Y1"
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter = local.mismatch_metric
              aggregation = {
                alignmentPeriod    = "60s"
                perSeriesAligner   = "ALIGN_RATE"
                crossSeriesReducer = "REDUCE_SUM"
                groupByFields      = ["metric.label.action", "metric.label.site_event_type"]
              }
            }
          }
        }]
        yAxis = { label = "deliveries/s", scale = "LINEAR" }
      }
    },
  ]

  # Cloud Monitoring stores dashboards as protobuf and drops every field at its zero value (0, "",
  # false, []), so a 0 written here would come back missing and show as a change on every plan.
  # xPos and yPos of the first column and row are therefore left out rather than set to 0; the
  # dashboard test (tests/wiring.tftest.hcl) checks the rendered JSON holds no zero value.
  dashboard_json = jsonencode({
    displayName = local.prefix
    mosaicLayout = {
      columns = 48
      tiles = [
        for i, t in local.dashboard_tiles : merge(
          i % 2 == 0 ? {} : { xPos = 24 },
          i < 2 ? {} : { yPos = floor(i / 2) * 16 },
          { width = 24, height = 16, widget = { title = t.title, xyChart = t.chart } },
        )
      ]
    }
  })
}

resource "google_monitoring_dashboard" "measure" {
  project        = var.project_id
  dashboard_json = local.dashboard_json

  depends_on = [time_sleep.apis_ready, time_sleep.metrics_visible]
}
