# The APIs a deployment uses. They stay enabled on destroy: other workloads in the project may
# depend on them, and disabling an API can take its data with it.
locals {
  services = toset(concat([
    "artifactregistry.googleapis.com",     # build images of the functions
    "cloudbuild.googleapis.com",           # builds the function source
    "cloudfunctions.googleapis.com",       # the three functions (gen2)
    "cloudresourcemanager.googleapis.com", # project IAM grants (getIamPolicy / setIamPolicy)
    "cloudscheduler.googleapis.com",       # calls sweep every few minutes
    "eventarc.googleapis.com",             # measure-events -> send trigger
    "iam.googleapis.com",                  # service accounts
    "iamcredentials.googleapis.com",       # OIDC tokens for Scheduler and Eventarc
    "logging.googleapis.com",              # log-based metrics
    "monitoring.googleapis.com",           # dashboard and alert policies
    "pubsub.googleapis.com",               # topics and subscriptions
    "run.googleapis.com",                  # gen2 functions run on Cloud Run
    "secretmanager.googleapis.com",        # consumer key, private key, webhook tokens
    "storage.googleapis.com",              # source archive bucket
    ], var.static_egress_ip ? [
    "compute.googleapis.com",   # VPC network, Cloud Router, Cloud NAT, the reserved address
    "vpcaccess.googleapis.com", # the connector send and sweep leave through
  ] : []))
}

resource "google_project_service" "this" {
  for_each = local.services

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
