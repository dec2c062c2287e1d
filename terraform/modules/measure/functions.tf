# The three entry points of main.py, each a gen2 function (a Cloud Run service underneath) with
# its own identity, from one resource block: what differs between them is in local.functions.
# Configuration reaches them only as the environment variables of docs/design.md.

locals {
  # The local-development stand-ins for the Secret Manager secrets (docs/design.md, "Configuration").
  # A deployment reads the secrets; setting one of these would bypass Secret Manager and put a key
  # into the function's configuration and Terraform state. No variable can add environment
  # entries, and the precondition on every function refuses them should one be added here.
  forbidden_environment = ["MEASURE_CONSUMER_KEY", "MEASURE_PRIVATE_KEY", "MEASURE_WEBHOOK_TOKENS"]

  environment = merge(
    {
      GOOGLE_CLOUD_PROJECT          = var.project_id
      MEASURE_ADVERTISER_ID         = var.advertiser_id
      MEASURE_SITE_IDS              = jsonencode(var.site_ids)
      MEASURE_EVENTS_TOPIC          = google_pubsub_topic.this["events"].name
      MEASURE_RETRY_TOPIC           = google_pubsub_topic.this["retry"].name
      MEASURE_RETRY_SUBSCRIPTION    = google_pubsub_subscription.this["retry"].name
      MEASURE_DEAD_LETTER_TOPIC     = google_pubsub_topic.this["dead_letter"].name
      MEASURE_CONSUMER_KEY_SECRET   = google_secret_manager_secret.this["consumer_key"].secret_id
      MEASURE_PRIVATE_KEY_SECRET    = google_secret_manager_secret.this["private_key"].secret_id
      MEASURE_WEBHOOK_TOKENS_SECRET = google_secret_manager_secret.this["webhook_tokens"].secret_id
      MEASURE_EVENT_MAX_AGE         = tostring(var.event_max_age_seconds)
      MEASURE_RETRY_MAX_AGE         = tostring(var.retry_max_age_seconds)
      MEASURE_SECRET_TTL            = tostring(var.secret_ttl_seconds)
      MEASURE_SWEEP_BUDGET          = tostring(var.sweep_budget_seconds)
    },
    var.endpoint_override == "" ? {} : { MEASURE_ENDPOINT = var.endpoint_override },
  )

  # The rate ceiling (docs/design.md, "Rate ceiling"): every instance that may call the Measurement
  # API at once counts as a sender, so each keeps under api_max_rps / senders. Only send and sweep
  # call it. "0" is off, as measure/config.py reads it.
  sender_environment = {
    MEASURE_API_MAX_RPS = tostring(var.api_max_rps)
    MEASURE_API_SENDERS = tostring(var.max_instances.send + var.max_instances.sweep)
  }

  environment_is_clean = length(setintersection(keys(local.environment), local.forbidden_environment)) == 0

  functions = {
    receive = {
      description = "measure webhook: validates game events and publishes them to ${local.topics.events}."
      # The telemetry server calls it from the internet; receive checks Bearer tokens itself.
      ingress     = "ALLOW_ALL"
      environment = {}
      sends       = false
    }
    send = {
      description = "measure delivery: signs each event from ${local.topics.events} and sends it to the Measurement API."
      # Eventarc's Pub/Sub push in the same project is internal traffic.
      ingress     = "ALLOW_INTERNAL_ONLY"
      environment = local.sender_environment
      sends       = true
    }
    sweep = {
      description = "measure retries: called by Cloud Scheduler, re-sends due events from ${local.subscriptions.retry}."
      # Cloud Scheduler in the same project counts as internal traffic; on top of that Cloud Run
      # admits only callers with run.invoker, which only the scheduler account has.
      ingress     = "ALLOW_INTERNAL_ONLY"
      environment = local.sender_environment
      sends       = true
    }
  }
}

resource "google_cloudfunctions2_function" "this" {
  # checkov:skip=CKV_GCP_124: the webhook is called by the studio's telemetry server over the internet; it checks Bearer tokens itself (send and sweep are internal only).
  for_each = local.functions

  project     = var.project_id
  location    = var.region
  name        = local.function_names[each.key]
  description = each.value.description
  labels      = local.labels

  build_config {
    runtime           = "python312"
    entry_point       = each.key
    service_account   = google_service_account.this["build"].id
    docker_repository = google_artifact_registry_repository.functions.id
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = local.sa_email[each.key]
    ingress_settings                 = each.value.ingress
    available_memory                 = var.memory
    available_cpu                    = var.cpu
    min_instance_count               = each.key == "receive" ? var.receive_min_instances : null
    max_instance_count               = var.max_instances[each.key]
    max_instance_request_concurrency = var.concurrency[each.key]
    timeout_seconds                  = var.timeout_seconds[each.key]
    all_traffic_on_latest_revision   = true
    environment_variables            = merge(local.environment, each.value.environment, { THREADS = tostring(var.concurrency[each.key]) })

    # With static_egress_ip, everything send and sweep send leaves through the connector and Cloud NAT's
    # reserved address (egress.tf). receive never calls out except to Google APIs.
    vpc_connector                 = var.static_egress_ip && each.value.sends ? google_vpc_access_connector.egress[0].id : null
    vpc_connector_egress_settings = var.static_egress_ip && each.value.sends ? "ALL_TRAFFIC" : null
  }

  dynamic "event_trigger" {
    for_each = each.key == "send" ? [1] : []
    content {
      trigger_region        = var.region
      event_type            = "google.cloud.pubsub.topic.v1.messagePublished"
      pubsub_topic          = google_pubsub_topic.this["events"].id
      retry_policy          = "RETRY_POLICY_RETRY" # send raises only when it cannot hand an event on
      service_account_email = local.sa_email.trigger
    }
  }

  lifecycle {
    precondition {
      condition     = local.environment_is_clean
      error_message = "MEASURE_CONSUMER_KEY, MEASURE_PRIVATE_KEY and MEASURE_WEBHOOK_TOKENS are local-development overrides and must never be set on a deployed function."
    }
    precondition {
      condition     = var.concurrency[each.key] == 1 || tonumber(var.cpu) >= 1
      error_message = "concurrency.${each.key} above 1 needs cpu of at least 1."
    }
    precondition {
      condition     = each.key != "receive" || var.receive_min_instances <= var.max_instances.receive
      error_message = "receive_min_instances must not exceed max_instances.receive."
    }
    precondition {
      condition     = each.key != "receive" || var.receive_public_invoker || length(var.receive_invokers) > 0
      error_message = "receive_public_invoker = false needs at least one receive_invokers member (the telemetry server's identity), or nothing could call the webhook."
    }
    precondition {
      condition     = each.key != "sweep" || var.timeout_seconds.sweep >= var.sweep_budget_seconds + 60
      error_message = "timeout_seconds.sweep must be at least sweep_budget_seconds + 60, or Cloud Run may cut a sweep off mid-batch."
    }
  }

  depends_on = [
    time_sleep.apis_ready,
    time_sleep.grants_propagated, # the build account's grants (and Eventarc's agent) are in effect
    google_pubsub_topic_iam_member.publisher,
    google_pubsub_subscription_iam_member.sweep_retry,
    google_secret_manager_secret_iam_member.accessor,
  ]
}

# Until this version the three functions were three resource blocks.
moved {
  from = google_cloudfunctions2_function.receive
  to   = google_cloudfunctions2_function.this["receive"]
}

moved {
  from = google_cloudfunctions2_function.send
  to   = google_cloudfunctions2_function.this["send"]
}

moved {
  from = google_cloudfunctions2_function.sweep
  to   = google_cloudfunctions2_function.this["sweep"]
}
