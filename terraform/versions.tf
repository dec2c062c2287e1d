terraform {
  # check blocks and import-by-config need 1.5.
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.4"
    }
  }

  # State holds no secret values (secret versions are added with gcloud, never by Terraform),
  # but it is the only record of what was created: keep it in a GCS backend for a team, e.g.
  #   terraform init -backend-config="bucket=<state-bucket>" -backend-config="prefix=measure"
  # after adding `backend "gcs" {}` here.
}

provider "google" {
  project = var.project_id
  region  = var.region
}
