# A fixed public address for what send and sweep send to the Measurement API, for an API key that
# TUNE restricts to an IP address (the auth guide, step 5). Only with static_egress_ip = true.
#
#   send, sweep ──(vpc_connector, ALL_TRAFFIC)──> connector ──> <prefix>-egress network
#     ──> Cloud Router + Cloud NAT (MANUAL_ONLY) ──> the reserved address (output egress_ip) ──> TUNE
#
# Google's recommended route for Cloud Run is Direct VPC egress (no connector instances to pay for),
# but google_cloudfunctions2_function (provider 7.x) has no field for it, only vpc_connector; a gen2
# function's Cloud Run service is owned by Cloud Functions and cannot be edited from Terraform. So a
# Serverless VPC Access connector it is, at its smallest (2 e2-micro instances, docs/cost.md).
# All traffic goes through it (ALL_TRAFFIC), the functions' calls to Google APIs (Secret Manager,
# Pub/Sub) included: Cloud NAT passes those on to Google too, billed per GiB like the rest.

locals {
  egress_name = "${local.prefix}-egress"
}

resource "google_compute_network" "egress" {
  # checkov:skip=CKV2_GCP_18: nothing listens in this network: it carries the connector's outbound traffic to Cloud NAT only, and a custom network's implied deny-all-ingress rule is its firewall (the connector adds its own health-check rules).
  count = var.static_egress_ip ? 1 : 0

  project                 = var.project_id
  name                    = local.egress_name
  auto_create_subnetworks = false
  description             = "measure ${local.prefix}: carries send and sweep's requests to Cloud NAT."

  depends_on = [time_sleep.apis_ready]
}

resource "google_compute_address" "egress" {
  count = var.static_egress_ip ? 1 : 0

  project      = var.project_id
  region       = var.region
  name         = local.egress_name
  address_type = "EXTERNAL"
  network_tier = "PREMIUM"
  description  = "measure ${local.prefix}: the one address TUNE sees send and sweep come from."
  labels       = local.labels

  depends_on = [time_sleep.apis_ready]
}

resource "google_compute_router" "egress" {
  count = var.static_egress_ip ? 1 : 0

  project = var.project_id
  region  = var.region
  name    = local.egress_name
  network = google_compute_network.egress[0].id
}

resource "google_compute_router_nat" "egress" {
  count = var.static_egress_ip ? 1 : 0

  project = var.project_id
  region  = var.region
  name    = local.egress_name
  router  = google_compute_router.egress[0].name

  # Only the reserved address, never one Google picks: TUNE admits that one alone.
  nat_ip_allocate_option             = "MANUAL_ONLY"
  nat_ips                            = [google_compute_address.egress[0].self_link]
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"

  log_config {
    enable = true
    filter = "ERRORS_ONLY" # port exhaustion and dropped connections, not every translation
  }
}

resource "google_vpc_access_connector" "egress" {
  count = var.static_egress_ip ? 1 : 0

  project       = var.project_id
  region        = var.region
  name          = local.egress_name
  network       = google_compute_network.egress[0].name
  ip_cidr_range = var.egress_connector_cidr
  machine_type  = "e2-micro"
  min_instances = 2
  max_instances = 3

  depends_on = [time_sleep.apis_ready]
}
