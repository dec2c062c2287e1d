terraform {
  # The module needs 1.9 (terraform/modules/measure/versions.tf); `removed` in main.tf needs 1.7.
  required_version = ">= 1.9"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.0"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 7.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.4"
    }
    time = {
      source  = "hashicorp/time"
      version = "~> 0.13"
    }
  }

  # State holds no secret values (secret versions are added with gcloud, never by Terraform),
  # but it is the only record of what was created: keep it in a GCS backend for a team, e.g.
  #   terraform init -backend-config="bucket=<state-bucket>" -backend-config="prefix=measure"
  # after adding `backend "gcs" {}` here.
}
