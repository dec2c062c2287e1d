terraform {
  # 1.9: variable validations that read other variables, and `terraform test`'s override_during.
  required_version = ">= 1.9"

  # No provider block: the caller configures google and google-beta (project, region, credentials)
  # and this module inherits them, so one root can call it several times (terraform/main.tf).
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.0"
    }
    # google_project_service_identity (Eventarc's and Pub/Sub's service agents) is in google-beta only.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 7.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.4"
    }
    # time_sleep: the waits Google's eventual consistency calls for, with no shell on the applying machine.
    time = {
      source  = "hashicorp/time"
      version = "~> 0.13"
    }
  }
}
