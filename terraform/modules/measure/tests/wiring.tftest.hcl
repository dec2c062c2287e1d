# The module's wiring, planned against mock providers: no credentials, no network.
#   offline: make tf-check (runs $TF_OFFLINE terraform/modules/measure terraform test)
#   online:  cd terraform/modules/measure && terraform init -backend=false && terraform test
# Every run is a plan (command = plan). Needs Terraform >= 1.9 (override_during).

mock_provider "google" {
  override_during = plan

  mock_resource "google_compute_address" {
    defaults = { address = "203.0.113.10", self_link = "https://www.googleapis.com/compute/v1/projects/studio-measure/regions/us-central1/addresses/measure-egress" }
  }

  mock_resource "google_vpc_access_connector" {
    defaults = { id = "projects/studio-measure/locations/us-central1/connectors/measure-egress" }
  }
}

mock_provider "google-beta" {
  override_during = plan

  mock_resource "google_project_service_identity" {
    defaults = {
      email  = "service-123456789012@gcp-sa-eventarc.iam.gserviceaccount.com"
      member = "serviceAccount:service-123456789012@gcp-sa-eventarc.iam.gserviceaccount.com"
    }
  }
}

mock_provider "time" {}

mock_provider "archive" {
  override_during = plan

  mock_data "archive_file" {
    defaults = {
      output_md5  = "0123456789abcdef0123456789abcdef"
      output_path = "build/measure-source.zip"
    }
  }
}

override_resource {
  target          = google_service_account.this["build"]
  override_during = plan
  values = {
    id     = "projects/studio-measure/serviceAccounts/measure-build@studio-measure.iam.gserviceaccount.com"
    email  = "measure-build@studio-measure.iam.gserviceaccount.com"
    member = "serviceAccount:measure-build@studio-measure.iam.gserviceaccount.com"
  }
}

override_resource {
  target          = google_service_account.this["trigger"]
  override_during = plan
  values = {
    email  = "measure-trigger@studio-measure.iam.gserviceaccount.com"
    member = "serviceAccount:measure-trigger@studio-measure.iam.gserviceaccount.com"
  }
}

override_resource {
  target          = google_service_account.this["scheduler"]
  override_during = plan
  values = {
    email  = "measure-scheduler@studio-measure.iam.gserviceaccount.com"
    member = "serviceAccount:measure-scheduler@studio-measure.iam.gserviceaccount.com"
  }
}

override_resource {
  target          = google_service_account.this["receive"]
  override_during = plan
  values = {
    email  = "measure-receive@studio-measure.iam.gserviceaccount.com"
    member = "serviceAccount:measure-receive@studio-measure.iam.gserviceaccount.com"
  }
}

override_resource {
  target          = google_service_account.this["send"]
  override_during = plan
  values = {
    email  = "measure-send@studio-measure.iam.gserviceaccount.com"
    member = "serviceAccount:measure-send@studio-measure.iam.gserviceaccount.com"
  }
}

override_resource {
  target          = google_service_account.this["sweep"]
  override_during = plan
  values = {
    email  = "measure-sweep@studio-measure.iam.gserviceaccount.com"
    member = "serviceAccount:measure-sweep@studio-measure.iam.gserviceaccount.com"
  }
}

override_resource {
  target          = google_cloudfunctions2_function.this["sweep"]
  override_during = plan
  values = {
    service_config = { service = "measure-sweep", uri = "https://measure-sweep-abc-uc.a.run.app" }
  }
}

override_resource {
  target          = google_cloudfunctions2_function.this["receive"]
  override_during = plan
  values = {
    service_config = { service = "measure-receive", uri = "https://measure-receive-abc-uc.a.run.app" }
  }
}

override_resource {
  target          = google_cloudfunctions2_function.this["send"]
  override_during = plan
  values = {
    service_config = { service = "measure-send", uri = "https://measure-send-abc-uc.a.run.app" }
  }
}

override_resource {
  target          = google_pubsub_topic.this["events"]
  override_during = plan
  values = {
    id = "projects/studio-measure/topics/measure-events"
  }
}

variables {
  project_id    = "studio-measure"
  advertiser_id = "123456"
  site_ids      = { "pc/steam" = "2960" }
}

run "builds_run_as_the_build_account_from_the_content_named_archive" {
  command = plan

  assert {
    condition = alltrue([for f in google_cloudfunctions2_function.this :
    f.build_config[0].service_account == "projects/studio-measure/serviceAccounts/measure-build@studio-measure.iam.gserviceaccount.com"])
    error_message = "every function must build with the measure-build service account"
  }

  assert {
    condition     = google_storage_bucket_object.source.name == "source-0123456789abcdef0123456789abcdef.zip"
    error_message = "the source object must be named by the archive's MD5"
  }

  assert {
    condition = alltrue([for f in google_cloudfunctions2_function.this :
    f.build_config[0].source[0].storage_source[0].object == google_storage_bucket_object.source.name])
    error_message = "every function must build from the content-named source object"
  }

  assert {
    condition     = google_project_iam_member.build_logs.role == "roles/logging.logWriter" && google_project_iam_member.build_logs.member == "serviceAccount:measure-build@studio-measure.iam.gserviceaccount.com"
    error_message = "the build account's only project-level role is writing build logs"
  }

  assert {
    condition     = google_storage_bucket_iam_member.build_source.role == "roles/storage.objectAdmin" && google_storage_bucket_iam_member.build_source.bucket == "studio-measure-measure-source" && google_storage_bucket_iam_member.build_source.member == "serviceAccount:measure-build@studio-measure.iam.gserviceaccount.com"
    error_message = "the build account reads the source on the source bucket only (Object Admin, as Google's build-account page says)"
  }

  assert {
    condition     = google_storage_bucket.source.force_destroy && google_storage_bucket.source.versioning[0].enabled
    error_message = "the versioned source bucket must be force_destroy, or `terraform destroy` fails on its old versions"
  }
}

run "only_the_intended_callers_may_invoke" {
  command = plan

  assert {
    condition     = length(google_cloud_run_v2_service_iam_member.receive_public) == 1 && google_cloud_run_v2_service_iam_member.receive_public[0].member == "allUsers" && google_cloud_run_v2_service_iam_member.receive_public[0].name == "measure-receive"
    error_message = "by default the webhook is public (it checks its own Bearer tokens)"
  }

  assert {
    condition     = google_cloud_run_v2_service_iam_member.send_trigger.role == "roles/run.invoker" && google_cloud_run_v2_service_iam_member.send_trigger.name == "measure-send" && google_cloud_run_v2_service_iam_member.send_trigger.member == "serviceAccount:measure-trigger@studio-measure.iam.gserviceaccount.com"
    error_message = "only the Eventarc trigger account may invoke send's Cloud Run service"
  }

  assert {
    condition     = google_cloud_run_v2_service_iam_member.sweep_scheduler.role == "roles/run.invoker" && google_cloud_run_v2_service_iam_member.sweep_scheduler.name == "measure-sweep" && google_cloud_run_v2_service_iam_member.sweep_scheduler.member == "serviceAccount:measure-scheduler@studio-measure.iam.gserviceaccount.com"
    error_message = "only the scheduler account may invoke sweep's Cloud Run service"
  }

  assert {
    condition     = google_cloudfunctions2_function.this["send"].event_trigger[0].service_account_email == "measure-trigger@studio-measure.iam.gserviceaccount.com"
    error_message = "the Eventarc trigger must push as the trigger account"
  }

  assert {
    condition = (google_cloudfunctions2_function.this["send"].service_config[0].ingress_settings == "ALLOW_INTERNAL_ONLY"
      && google_cloudfunctions2_function.this["sweep"].service_config[0].ingress_settings == "ALLOW_INTERNAL_ONLY"
    && google_cloudfunctions2_function.this["receive"].service_config[0].ingress_settings == "ALLOW_ALL")
    error_message = "send and sweep take internal traffic only; receive is reachable from the internet"
  }
}

run "scheduler_calls_sweep_with_an_oidc_token_for_its_url" {
  command = plan

  assert {
    condition     = google_cloud_scheduler_job.sweep.http_target[0].oidc_token[0].audience == "https://measure-sweep-abc-uc.a.run.app"
    error_message = "the OIDC audience must be sweep's URL"
  }

  assert {
    condition     = google_cloud_scheduler_job.sweep.http_target[0].uri == "https://measure-sweep-abc-uc.a.run.app"
    error_message = "the job must call sweep's URL"
  }

  assert {
    condition     = google_cloud_scheduler_job.sweep.http_target[0].oidc_token[0].service_account_email == "measure-scheduler@studio-measure.iam.gserviceaccount.com"
    error_message = "the job must sign as the scheduler account"
  }

  assert {
    condition     = google_cloud_scheduler_job.sweep.region == "us-central1"
    error_message = "by default the job runs in `region`"
  }
}

run "grants_are_per_topic_and_per_secret" {
  command = plan

  assert {
    condition = toset([for k, g in google_pubsub_topic_iam_member.publisher : "${g.member} ${g.topic} ${g.role}"]) == toset([
      "serviceAccount:measure-receive@studio-measure.iam.gserviceaccount.com measure-events roles/pubsub.publisher",
      "serviceAccount:measure-send@studio-measure.iam.gserviceaccount.com measure-retry roles/pubsub.publisher",
      "serviceAccount:measure-send@studio-measure.iam.gserviceaccount.com measure-dead-letter roles/pubsub.publisher",
      "serviceAccount:measure-sweep@studio-measure.iam.gserviceaccount.com measure-retry roles/pubsub.publisher",
      "serviceAccount:measure-sweep@studio-measure.iam.gserviceaccount.com measure-dead-letter roles/pubsub.publisher",
    ])
    error_message = "publishers must follow the data flow, one topic each"
  }

  assert {
    condition = toset([for k, g in google_secret_manager_secret_iam_member.accessor : "${g.member} ${g.secret_id} ${g.role}"]) == toset([
      "serviceAccount:measure-receive@studio-measure.iam.gserviceaccount.com measure-webhook-tokens roles/secretmanager.secretAccessor",
      "serviceAccount:measure-send@studio-measure.iam.gserviceaccount.com measure-consumer-key roles/secretmanager.secretAccessor",
      "serviceAccount:measure-send@studio-measure.iam.gserviceaccount.com measure-private-key roles/secretmanager.secretAccessor",
      "serviceAccount:measure-sweep@studio-measure.iam.gserviceaccount.com measure-consumer-key roles/secretmanager.secretAccessor",
      "serviceAccount:measure-sweep@studio-measure.iam.gserviceaccount.com measure-private-key roles/secretmanager.secretAccessor",
    ])
    error_message = "each runtime reads only the secrets it uses"
  }

  assert {
    condition     = google_pubsub_subscription_iam_member.sweep_retry.subscription == "measure-retry-sweeper" && google_pubsub_subscription_iam_member.sweep_retry.member == "serviceAccount:measure-sweep@studio-measure.iam.gserviceaccount.com"
    error_message = "only sweep subscribes, to the retry subscription only"
  }
}

run "eventarc_service_agent_is_created_and_granted_in_a_binding_of_its_own" {
  command = plan

  assert {
    condition     = google_project_service_identity.eventarc.service == "eventarc.googleapis.com" && google_project_service_identity.eventarc.project == "studio-measure"
    error_message = "Eventarc's service agent is created through the provider (no gcloud)"
  }

  assert {
    condition     = google_project_iam_member.eventarc_agent.role == "roles/eventarc.serviceAgent" && google_project_iam_member.eventarc_agent.member == "serviceAccount:service-123456789012@gcp-sa-eventarc.iam.gserviceaccount.com"
    error_message = "Eventarc's service agent (from the identity, no project lookup) must hold roles/eventarc.serviceAgent"
  }

  assert {
    condition     = google_project_iam_member.eventarc_agent.condition[0].title == "measure Eventarc trigger" && strcontains(google_project_iam_member.eventarc_agent.condition[0].expression, "request.time")
    error_message = "the grant is a conditional binding of this deployment's, so destroy leaves Google's own grant to other triggers"
  }

  assert {
    condition     = length(google_project_service_identity.pubsub) == 0 && length(google_service_account_iam_member.pubsub_token_creator) == 0
    error_message = "Pub/Sub's agent is touched only for legacy projects"
  }
}

run "legacy_pubsub_agent_gets_token_creator_on_the_trigger_account" {
  command = plan

  variables {
    legacy_pubsub_service_agent = true
  }

  assert {
    condition     = google_project_service_identity.pubsub[0].service == "pubsub.googleapis.com" && google_service_account_iam_member.pubsub_token_creator[0].role == "roles/iam.serviceAccountTokenCreator"
    error_message = "a legacy project's Pub/Sub agent may mint tokens for the trigger account"
  }
}

run "routine_logs_are_excluded_by_default" {
  command = plan

  assert {
    condition     = length(google_logging_project_exclusion.routine) == 1
    error_message = "the routine-log exclusion must exist by default"
  }

  assert {
    condition = alltrue([for s in ["measure-receive", "measure-send", "measure-sweep", "run.googleapis.com/requests", "httpRequest.status<400", "severity<WARNING"] :
    strcontains(google_logging_project_exclusion.routine[0].filter, s)])
    error_message = "the exclusion must cover the three services' request logs below 400 and INFO lines only"
  }

  assert {
    condition     = google_cloudfunctions2_function.this["receive"].service_config[0].min_instance_count == 0
    error_message = "receive scales to zero by default"
  }
}

run "routine_logs_kept_and_a_warm_receive_when_asked" {
  command = plan

  variables {
    ingest_routine_logs   = true
    receive_min_instances = 1
    scheduler_region      = "europe-west1"
    region                = "europe-north1"
  }

  assert {
    condition     = length(google_logging_project_exclusion.routine) == 0
    error_message = "ingest_routine_logs = true must remove the exclusion"
  }

  assert {
    condition     = google_cloudfunctions2_function.this["receive"].service_config[0].min_instance_count == 1
    error_message = "receive_min_instances must reach min_instance_count"
  }

  assert {
    condition     = google_cloud_scheduler_job.sweep.region == "europe-west1" && google_cloudfunctions2_function.this["sweep"].location == "europe-north1"
    error_message = "scheduler_region moves the job only"
  }
}

run "domain_restricted_sharing_grants_the_telemetry_identity_instead_of_allUsers" {
  command = plan

  variables {
    receive_public_invoker = false
    receive_invokers       = ["serviceAccount:telemetry@studio-prod.iam.gserviceaccount.com"]
  }

  assert {
    condition     = length(google_cloud_run_v2_service_iam_member.receive_public) == 0
    error_message = "no allUsers grant when receive_public_invoker is false"
  }

  assert {
    condition     = google_cloud_run_v2_service_iam_member.receive_invoker["serviceAccount:telemetry@studio-prod.iam.gserviceaccount.com"].role == "roles/run.invoker" && google_cloud_run_v2_service_iam_member.receive_invoker["serviceAccount:telemetry@studio-prod.iam.gserviceaccount.com"].name == "measure-receive"
    error_message = "the telemetry identity must get run.invoker on receive"
  }

  assert {
    condition     = output.webhook_audience == "https://measure-receive-abc-uc.a.run.app"
    error_message = "the identity token's audience is receive's URL"
  }
}

run "default_prefix_keeps_todays_names" {
  command = plan

  assert {
    condition = (output.function_names == { receive = "measure-receive", send = "measure-send", sweep = "measure-sweep" }
      && output.topics == { events = "measure-events", retry = "measure-retry", dead_letter = "measure-dead-letter" }
      && output.secret_ids == { consumer_key = "measure-consumer-key", private_key = "measure-private-key", webhook_tokens = "measure-webhook-tokens" }
      && google_storage_bucket.source.name == "studio-measure-measure-source"
      && google_cloud_scheduler_job.sweep.name == "measure-sweep"
    && output.log_metrics.delivery_outcomes == "measure_delivery_outcomes")
    error_message = "name_prefix's default must keep the names measure/config.py expects and existing deployments have"
  }
}

run "dashboard_json_holds_no_value_the_api_drops" {
  command = plan

  # Cloud Monitoring drops zero-valued fields (0, "", false, [], {}); any left in the JSON would
  # come back missing and make every plan show a change.
  assert {
    condition     = length(regexall("\":(0|false|\"\"|\\[\\]|\\{\\})[,}\\]]", google_monitoring_dashboard.measure.dashboard_json)) == 0
    error_message = "the dashboard JSON holds a zero value: ${join(", ", regexall("\"[A-Za-z]+\":(?:0|false|\"\"|\\[\\]|\\{\\})[,}\\]]", google_monitoring_dashboard.measure.dashboard_json))}"
  }

  assert {
    condition     = length(jsondecode(google_monitoring_dashboard.measure.dashboard_json).mosaicLayout.tiles) == 8 && !can(jsondecode(google_monitoring_dashboard.measure.dashboard_json).mosaicLayout.tiles[0].xPos) && jsondecode(google_monitoring_dashboard.measure.dashboard_json).mosaicLayout.tiles[3].yPos == 16
    error_message = "eight tiles, two columns; the first tile has no xPos or yPos (both 0)"
  }

  assert {
    condition     = strcontains(google_monitoring_dashboard.measure.dashboard_json, "logging.googleapis.com/user/measure_type_mismatch")
    error_message = "the dashboard shows the type mismatches"
  }
}

run "replay_subscription_is_a_pull_subscription_on_the_events_topic" {
  command = plan

  assert {
    condition     = output.subscriptions.replay == "measure-events-replay" && google_pubsub_subscription.this["replay"].topic == "projects/studio-measure/topics/measure-events"
    error_message = "the replay subscription is measure-events-replay, on the events topic"
  }

  assert {
    condition = (length(google_pubsub_subscription.this["replay"].push_config) == 0
      && google_pubsub_subscription.this["replay"].expiration_policy[0].ttl == ""
    && google_pubsub_subscription.this["replay"].message_retention_duration == google_pubsub_topic.this["events"].message_retention_duration)
    error_message = "a pull subscription that never expires (nobody pulls it between replays) and keeps what the topic keeps"
  }

  assert {
    condition     = alltrue([for m in google_pubsub_subscription_iam_member.sweep_retry[*] : m.subscription != "measure-events-replay"])
    error_message = "no function reads the replay subscription"
  }
}

run "rate_ceiling_off_by_default_on_the_senders_only" {
  command = plan

  assert {
    condition = alltrue([for k in ["send", "sweep"] :
      google_cloudfunctions2_function.this[k].service_config[0].environment_variables.MEASURE_API_MAX_RPS == "0"
    && google_cloudfunctions2_function.this[k].service_config[0].environment_variables.MEASURE_API_SENDERS == "21"])
    error_message = "send and sweep get MEASURE_API_MAX_RPS=0 (off) and SENDERS = 20 + 1 max instances"
  }

  assert {
    condition     = !contains(keys(google_cloudfunctions2_function.this["receive"].service_config[0].environment_variables), "MEASURE_API_MAX_RPS")
    error_message = "receive never calls the Measurement API"
  }
}

run "rate_ceiling_from_api_max_rps" {
  command = plan

  variables {
    api_max_rps   = 50
    max_instances = { send = 4, sweep = 1 }
  }

  assert {
    condition = alltrue([for k in ["send", "sweep"] :
      google_cloudfunctions2_function.this[k].service_config[0].environment_variables.MEASURE_API_MAX_RPS == "50"
    && google_cloudfunctions2_function.this[k].service_config[0].environment_variables.MEASURE_API_SENDERS == "5"])
    error_message = "api_max_rps reaches send and sweep, with SENDERS = max_instances.send + max_instances.sweep"
  }
}

run "alerts_for_silence_and_a_surge_of_4xx" {
  command = plan

  variables {
    notification_channels = ["projects/studio-measure/notificationChannels/42"]
  }

  assert {
    condition = (google_monitoring_alert_policy.silence[0].conditions[0].condition_absent[0].duration == "1800s"
      && strcontains(google_monitoring_alert_policy.silence[0].conditions[0].condition_absent[0].filter, "resource.labels.topic_id=\"measure-events\"")
    && strcontains(google_monitoring_alert_policy.silence[0].conditions[0].condition_absent[0].filter, "pubsub.googleapis.com/topic/send_request_count"))
    error_message = "silence: nothing published to measure-events for 30 minutes by default"
  }

  assert {
    condition = (strcontains(google_monitoring_alert_policy.webhook_4xx.conditions[0].condition_threshold[0].filter, "metric.labels.response_code_class=\"4xx\"")
      && strcontains(google_monitoring_alert_policy.webhook_4xx.conditions[0].condition_threshold[0].filter, "resource.labels.service_name=\"measure-receive\"")
    && google_monitoring_alert_policy.webhook_4xx.conditions[0].condition_threshold[0].threshold_value == 50)
    error_message = "a surge of 4xx at the webhook: more than 50 in 5 minutes by default"
  }

  assert {
    condition     = google_monitoring_alert_policy.silence[0].notification_channels == tolist(["projects/studio-measure/notificationChannels/42"]) && google_monitoring_alert_policy.webhook_4xx.notification_channels == tolist(["projects/studio-measure/notificationChannels/42"])
    error_message = "both notify the existing channels"
  }
}

run "silence_alert_can_be_turned_off" {
  command = plan

  variables {
    silence_alert_seconds = 0
  }

  assert {
    condition     = length(google_monitoring_alert_policy.silence) == 0 && !contains(keys(output.alert_policies), "silence")
    error_message = "silence_alert_seconds = 0 removes the silence alert"
  }
}

run "type_mismatch_metric_counts_the_warning_line" {
  command = plan

  assert {
    condition = (google_logging_metric.type_mismatch.name == "measure_type_mismatch"
      && strcontains(google_logging_metric.type_mismatch.filter, "jsonPayload.message=\"type mismatch\"")
    && google_logging_metric.type_mismatch.label_extractors == tomap({ action = "EXTRACT(jsonPayload.action)", site_event_type = "EXTRACT(jsonPayload.site_event_type)" }))
    error_message = "measure_type_mismatch counts the WARNING \"type mismatch\" lines by action and resolved type"
  }
}

run "shared_egress_by_default" {
  command = plan

  assert {
    condition     = output.egress_ip == null && length(google_compute_router_nat.egress) == 0 && alltrue([for f in google_cloudfunctions2_function.this : f.service_config[0].vpc_connector == null])
    error_message = "no network, NAT or connector unless static_egress_ip"
  }
}

run "static_egress_ip_sends_through_cloud_nat_from_one_address" {
  command = plan

  variables {
    static_egress_ip = true
  }

  assert {
    condition     = output.egress_ip == "203.0.113.10"
    error_message = "egress_ip is the reserved address"
  }

  assert {
    condition = (google_compute_router_nat.egress[0].nat_ip_allocate_option == "MANUAL_ONLY"
      && google_compute_router_nat.egress[0].nat_ips == toset([google_compute_address.egress[0].self_link])
    && google_compute_router_nat.egress[0].router == google_compute_router.egress[0].name)
    error_message = "Cloud NAT uses the reserved address only"
  }

  assert {
    condition = alltrue([for k in ["send", "sweep"] :
      google_cloudfunctions2_function.this[k].service_config[0].vpc_connector == google_vpc_access_connector.egress[0].id
    && google_cloudfunctions2_function.this[k].service_config[0].vpc_connector_egress_settings == "ALL_TRAFFIC"])
    error_message = "send and sweep send all their traffic through the connector"
  }

  assert {
    condition     = google_cloudfunctions2_function.this["receive"].service_config[0].vpc_connector == null
    error_message = "receive keeps Google's egress"
  }

  assert {
    condition     = contains(keys(google_project_service.this), "compute.googleapis.com") && contains(keys(google_project_service.this), "vpcaccess.googleapis.com")
    error_message = "the network APIs are enabled with the option"
  }
}
