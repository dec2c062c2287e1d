# Two deployments of the module in one project (two games, terraform/main.tf's comment), planned
# against mock providers: no name of one is a name of the other.
#   offline: make tf-check       online: cd terraform/modules/measure && terraform init && terraform test

mock_provider "google" {}
mock_provider "google-beta" {}
mock_provider "archive" {}
mock_provider "time" {}

run "two_prefixes_share_no_name" {
  command = plan

  module {
    source = "./tests/two"
  }

  providers = {
    google      = google
    google-beta = google-beta
    archive     = archive
    time        = time
  }

  assert {
    condition     = length(output.resource_names) == 2
    error_message = "the fixture must plan two deployments"
  }

  assert {
    condition = alltrue([for kind in keys(output.resource_names["game1"]) :
      length(setintersection(toset(output.resource_names["game1"][kind]), toset(output.resource_names["game2"][kind]))) == 0
    ])
    error_message = "two deployments share a name: ${jsonencode(output.resource_names)}"
  }

  assert {
    condition = alltrue([for k in keys(output.resource_names) :
    length(flatten(values(output.resource_names[k]))) >= 30])
    error_message = "resource_names must list every function, topic, subscription, secret, account, bucket, metric and alert"
  }

  assert {
    condition     = output.resource_names["game1"].functions == ["measure-receive", "measure-send", "measure-sweep"] && output.resource_names["game2"].functions == ["measure-game2-receive", "measure-game2-send", "measure-game2-sweep"]
    error_message = "the default prefix keeps today's names; another prefix starts every name"
  }

  assert {
    condition     = output.subscriptions["game2"].replay == "measure-game2-events-replay"
    error_message = "each deployment has its own replay subscription"
  }
}
