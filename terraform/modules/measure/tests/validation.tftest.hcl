# Every variable validation and every precondition, each shown refusing one bad value at plan
# (expect_failures). Mock providers: no credentials, no network; runs as wiring.tftest.hcl does.

mock_provider "google" {}
mock_provider "google-beta" {}
mock_provider "archive" {}
mock_provider "time" {}

variables {
  project_id    = "studio-measure"
  advertiser_id = "123456"
  site_ids      = { "pc/steam" = "2960" }
}

run "refuses_project_id" {
  command = plan

  variables {
    project_id = "Studio_Measure"
  }

  expect_failures = [var.project_id]
}

run "refuses_region" {
  command = plan

  variables {
    region = "uscentral"
  }

  expect_failures = [var.region]
}

run "refuses_scheduler_region_not_a_region_name" {
  command = plan

  variables {
    scheduler_region = "Europe West 1"
  }

  expect_failures = [var.scheduler_region]
}

run "refuses_advertiser_id" {
  command = plan

  variables {
    advertiser_id = "adv-1"
  }

  expect_failures = [var.advertiser_id]
}

run "refuses_site_ids_empty" {
  command = plan

  variables {
    site_ids = {}
  }

  expect_failures = [var.site_ids]
}

run "refuses_site_ids_key_without_storefront" {
  command = plan

  variables {
    site_ids = { "steam" = "2960" }
  }

  expect_failures = [var.site_ids]
}

run "refuses_site_ids_value_not_numeric" {
  command = plan

  variables {
    site_ids = { "pc/steam" = "abc" }
  }

  expect_failures = [var.site_ids]
}

run "refuses_site_ids_keys_differing_in_case" {
  command = plan

  variables {
    site_ids = { "pc/steam" = "1", "PC/Steam" = "2" }
  }

  expect_failures = [var.site_ids]
}

run "refuses_endpoint_override_plain_http" {
  command = plan

  variables {
    endpoint_override = "http://api.example.com/serve"
  }

  expect_failures = [var.endpoint_override]
}

run "refuses_endpoint_override_ip_literal" {
  command = plan

  variables {
    endpoint_override = "https://127.0.0.1/serve"
  }

  expect_failures = [var.endpoint_override]
}

run "refuses_endpoint_override_loopback_name" {
  command = plan

  variables {
    endpoint_override = "https://api.localhost/serve"
  }

  expect_failures = [var.endpoint_override]
}

run "refuses_sweep_schedule" {
  command = plan

  variables {
    sweep_schedule = "every 5 minutes"
  }

  expect_failures = [var.sweep_schedule]
}

run "refuses_retry_max_age_seconds" {
  command = plan

  variables {
    retry_max_age_seconds = 2678401
  }

  expect_failures = [var.retry_max_age_seconds]
}

run "refuses_event_max_age_seconds" {
  command = plan

  variables {
    event_max_age_seconds = 59
  }

  expect_failures = [var.event_max_age_seconds]
}

run "refuses_secret_ttl_seconds" {
  command = plan

  variables {
    secret_ttl_seconds = 901
  }

  expect_failures = [var.secret_ttl_seconds]
}

run "refuses_max_instances" {
  command = plan

  variables {
    max_instances = { send = 0 }
  }

  expect_failures = [var.max_instances]
}

run "refuses_concurrency" {
  command = plan

  variables {
    concurrency = { receive = 1001 }
  }

  expect_failures = [var.concurrency]
}

run "refuses_cpu" {
  command = plan

  variables {
    cpu = "two"
  }

  expect_failures = [var.cpu]
}

run "refuses_memory" {
  command = plan

  variables {
    memory = "256MB"
  }

  expect_failures = [var.memory]
}

run "refuses_timeout_seconds_fraction" {
  command = plan

  variables {
    timeout_seconds = { receive = 1.5 }
  }

  expect_failures = [var.timeout_seconds]
}

run "refuses_timeout_seconds_receive" {
  command = plan

  variables {
    timeout_seconds = { receive = 3601 }
  }

  expect_failures = [var.timeout_seconds]
}

run "refuses_timeout_seconds_send" {
  command = plan

  variables {
    timeout_seconds = { send = 541 }
  }

  expect_failures = [var.timeout_seconds]
}

run "refuses_timeout_seconds_sweep" {
  command = plan

  variables {
    timeout_seconds = { sweep = 1801 }
  }

  expect_failures = [var.timeout_seconds]
}

run "refuses_sweep_budget_seconds" {
  command = plan

  variables {
    sweep_budget_seconds = 29
  }

  expect_failures = [var.sweep_budget_seconds]
}

run "refuses_notification_channels" {
  command = plan

  variables {
    notification_channels = ["12345"]
  }

  expect_failures = [var.notification_channels]
}

run "refuses_retry_age_alert_seconds" {
  command = plan

  variables {
    retry_age_alert_seconds = 299
  }

  expect_failures = [var.retry_age_alert_seconds]
}

run "refuses_rejected_alert_threshold" {
  command = plan

  variables {
    rejected_alert_threshold = -1
  }

  expect_failures = [var.rejected_alert_threshold]
}

run "refuses_labels" {
  command = plan

  variables {
    labels = { Team = "ops" }
  }

  expect_failures = [var.labels]
}

run "refuses_receive_invokers_not_a_member" {
  command = plan

  variables {
    receive_invokers = ["allUsers"]
  }

  expect_failures = [var.receive_invokers]
}

run "refuses_receive_min_instances" {
  command = plan

  variables {
    receive_min_instances = -1
  }

  expect_failures = [var.receive_min_instances]
}

run "refuses_propagation_wait_seconds" {
  command = plan

  variables {
    propagation_wait_seconds = 901
  }

  expect_failures = [var.propagation_wait_seconds]
}

run "refuses_a_private_webhook_nobody_may_call" {
  command = plan

  variables {
    receive_public_invoker = false
  }

  expect_failures = [google_cloudfunctions2_function.this]
}

run "refuses_more_warm_receive_instances_than_its_maximum" {
  command = plan

  variables {
    receive_min_instances = 3
    max_instances         = { receive = 2 }
  }

  expect_failures = [google_cloudfunctions2_function.this]
}

run "refuses_concurrency_above_1_on_less_than_a_vcpu" {
  command = plan

  variables {
    cpu         = "0.5"
    concurrency = { receive = 1, send = 8, sweep = 1 }
  }

  expect_failures = [google_cloudfunctions2_function.this]
}

run "refuses_a_sweep_timeout_inside_its_budget" {
  command = plan

  variables {
    sweep_budget_seconds = 600
    timeout_seconds      = { sweep = 620 }
  }

  expect_failures = [google_cloudfunctions2_function.this]
}

run "refuses_name_prefix_too_long" {
  command = plan

  variables {
    name_prefix = "measure-game-number-2"
  }

  expect_failures = [var.name_prefix]
}

run "refuses_name_prefix_trailing_hyphen" {
  command = plan

  variables {
    name_prefix = "measure-"
  }

  expect_failures = [var.name_prefix]
}

run "refuses_source_dir_without_main_py" {
  command = plan

  variables {
    source_dir = "/nonexistent"
  }

  expect_failures = [var.source_dir]
}

run "refuses_api_max_rps_negative" {
  command = plan

  variables {
    api_max_rps = -1
  }

  expect_failures = [var.api_max_rps]
}

run "refuses_egress_connector_cidr_not_a_28" {
  command = plan

  variables {
    egress_connector_cidr = "10.8.0.0/24"
  }

  expect_failures = [var.egress_connector_cidr]
}

run "refuses_silence_alert_seconds_below_two_minutes" {
  command = plan

  variables {
    silence_alert_seconds = 60
  }

  expect_failures = [var.silence_alert_seconds]
}

run "refuses_webhook_4xx_alert_threshold" {
  command = plan

  variables {
    webhook_4xx_alert_threshold = 1.5
  }

  expect_failures = [var.webhook_4xx_alert_threshold]
}

run "refuses_log_metric_wait_seconds" {
  command = plan

  variables {
    log_metric_wait_seconds = 901
  }

  expect_failures = [var.log_metric_wait_seconds]
}
