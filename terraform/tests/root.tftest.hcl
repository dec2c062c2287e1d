# The root a user applies: its variables reach the module, unset ones as the module's defaults.
# Mock providers, plan only (the module's own tests are in modules/measure/tests).
#   offline: make tf-check       online: cd terraform && terraform init -backend=false && terraform test

mock_provider "google" {}
mock_provider "google-beta" {}
mock_provider "archive" {}
mock_provider "time" {}

variables {
  project_id    = "studio-measure"
  advertiser_id = "123456"
  site_ids      = { "pc/steam" = "2960" }
}

run "unset_variables_are_the_modules_defaults" {
  command = plan

  assert {
    condition     = output.name_prefix == "measure" && output.function_names.send == "measure-send" && output.subscriptions.replay == "measure-events-replay"
    error_message = "an unset name_prefix reaches the module as null and becomes its default, measure"
  }

  assert {
    condition     = output.scheduler_region == "us-central1" && output.egress_ip == null
    error_message = "region and static_egress_ip keep the module's defaults"
  }

  assert {
    condition     = contains(keys(output.alert_policies), "silence") && output.alert_policies.webhook_4xx == "measure: webhook refusing requests"
    error_message = "the five alert policies exist by default"
  }
}

run "a_set_variable_reaches_the_module" {
  command = plan

  variables {
    name_prefix           = "measure-game2"
    silence_alert_seconds = 0
    max_instances         = { send = 5 }
  }

  assert {
    condition     = output.function_names.receive == "measure-game2-receive" && !contains(keys(output.alert_policies), "silence")
    error_message = "the root passes name_prefix and silence_alert_seconds on"
  }
}

# A bad value given to the root is refused by the module's validation, naming the variable and
# modules/measure/variables.tf (terraform test's expect_failures cannot name a child module's
# variable, so that is shown by the module's own validation tests).
