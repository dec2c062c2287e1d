# The module's wiring, planned against mock providers: no credentials, no network.
#   offline: make tf-check (runs $TF_OFFLINE terraform terraform test)
#   online:  cd terraform && terraform init -backend=false && terraform test
# Every run is a plan (command = plan): applying would run the local-exec provisioners of
# readiness.tf (gcloud, curl, sleep) on this machine. Needs Terraform >= 1.9 (override_during).

mock_provider "google" {
  override_during = plan

  mock_data "google_project" {
    defaults = { number = "123456789012" }
  }
}

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
  target          = google_cloudfunctions2_function.sweep
  override_during = plan
  values = {
    service_config = { service = "measure-sweep", uri = "https://measure-sweep-abc-uc.a.run.app" }
  }
}

override_resource {
  target          = google_cloudfunctions2_function.receive
  override_during = plan
  values = {
    service_config = { service = "measure-receive", uri = "https://measure-receive-abc-uc.a.run.app" }
  }
}

override_resource {
  target          = google_cloudfunctions2_function.send
  override_during = plan
  values = {
    service_config = { service = "measure-send", uri = "https://measure-send-abc-uc.a.run.app" }
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
    condition = alltrue([for f in [google_cloudfunctions2_function.receive, google_cloudfunctions2_function.send, google_cloudfunctions2_function.sweep] :
    f.build_config[0].service_account == "projects/studio-measure/serviceAccounts/measure-build@studio-measure.iam.gserviceaccount.com"])
    error_message = "every function must build with the measure-build service account"
  }

  assert {
    condition     = google_storage_bucket_object.source.name == "source-0123456789abcdef0123456789abcdef.zip"
    error_message = "the source object must be named by the archive's MD5"
  }

  assert {
    condition = alltrue([for f in [google_cloudfunctions2_function.receive, google_cloudfunctions2_function.send, google_cloudfunctions2_function.sweep] :
    f.build_config[0].source[0].storage_source[0].object == google_storage_bucket_object.source.name])
    error_message = "every function must build from the content-named source object"
  }

  assert {
    condition     = toset(keys(google_project_iam_member.build)) == toset(["roles/logging.logWriter", "roles/storage.objectViewer"])
    error_message = "the build account needs exactly log writing and reading the staged source"
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
    condition     = google_cloudfunctions2_function.send.event_trigger[0].service_account_email == "measure-trigger@studio-measure.iam.gserviceaccount.com"
    error_message = "the Eventarc trigger must push as the trigger account"
  }

  assert {
    condition = (google_cloudfunctions2_function.send.service_config[0].ingress_settings == "ALLOW_INTERNAL_ONLY"
      && google_cloudfunctions2_function.sweep.service_config[0].ingress_settings == "ALLOW_INTERNAL_ONLY"
    && google_cloudfunctions2_function.receive.service_config[0].ingress_settings == "ALLOW_ALL")
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

run "eventarc_service_agent_is_created_and_granted" {
  command = plan

  assert {
    condition     = google_project_iam_member.eventarc_agent.role == "roles/eventarc.serviceAgent" && google_project_iam_member.eventarc_agent.member == "serviceAccount:service-123456789012@gcp-sa-eventarc.iam.gserviceaccount.com"
    error_message = "Eventarc's service agent must hold roles/eventarc.serviceAgent"
  }

  assert {
    condition     = terraform_data.eventarc_identity.triggers_replace == ["studio-measure"]
    error_message = "the identity is created once per project"
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
    condition     = google_cloudfunctions2_function.receive.service_config[0].min_instance_count == 0
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
    condition     = google_cloudfunctions2_function.receive.service_config[0].min_instance_count == 1
    error_message = "receive_min_instances must reach min_instance_count"
  }

  assert {
    condition     = google_cloud_scheduler_job.sweep.region == "europe-west1" && google_cloudfunctions2_function.sweep.location == "europe-north1"
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
