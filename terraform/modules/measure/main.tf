# Names and settings shared by several files. Every name starts with var.name_prefix, so two
# deployments (two games) fit in one project; with the default prefix "measure" they are the
# defaults measure/config.py expects (docs/design.md, "Configuration"). They are still passed to the
# functions explicitly so a deployment never depends on a default by accident.

locals {
  prefix = var.name_prefix

  labels = merge(var.labels, { app = "measure", measure_deployment = local.prefix })

  topics = {
    events      = "${local.prefix}-events"
    retry       = "${local.prefix}-retry"
    dead_letter = "${local.prefix}-dead-letter"
  }

  subscriptions = {
    retry       = "${local.prefix}-retry-sweeper"
    dead_letter = "${local.prefix}-dead-letter-hold"
    replay      = "${local.prefix}-events-replay"
  }

  secrets = {
    consumer_key   = "${local.prefix}-consumer-key"
    private_key    = "${local.prefix}-private-key"
    webhook_tokens = "${local.prefix}-webhook-tokens"
  }

  # Cloud Function (and so Cloud Run service, and log service_name) of each entry point.
  function_names = {
    receive = "${local.prefix}-receive"
    send    = "${local.prefix}-send"
    sweep   = "${local.prefix}-sweep"
  }

  # Log-based metric names allow no hyphen: measure_delivery_outcomes for the default prefix.
  metric_names = {
    for k in ["delivery_outcomes", "delivery_latency", "delivered_event_age", "type_mismatch"] :
    k => "${replace(local.prefix, "-", "_")}_${k}"
  }

  # Pub/Sub keeps messages at most 31 days; retry and dead-letter subscriptions keep them that long.
  max_retention = "2678400s"
}
