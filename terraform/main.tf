# Names and settings shared by several files. The topic, subscription and secret names are the
# defaults measure/config.py expects (docs/design.md, "Configuration"); they are still passed to the
# functions explicitly so a deployment never depends on a default by accident.

locals {
  labels = merge(var.labels, { app = "measure" })

  topics = {
    events      = "measure-events"
    retry       = "measure-retry"
    dead_letter = "measure-dead-letter"
  }

  subscriptions = {
    retry       = "measure-retry-sweeper"
    dead_letter = "measure-dead-letter-hold"
  }

  secrets = {
    consumer_key   = "measure-consumer-key"
    private_key    = "measure-private-key"
    webhook_tokens = "measure-webhook-tokens"
  }

  # Cloud Function (and so Cloud Run service, and log service_name) of each entry point.
  function_names = {
    receive = "measure-receive"
    send    = "measure-send"
    sweep   = "measure-sweep"
  }

  # Pub/Sub keeps messages at most 31 days; retry and dead-letter subscriptions keep them that long.
  max_retention = "2678400s"
}
