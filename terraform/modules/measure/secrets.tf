# Secret containers only. Their values are added with gcloud (see the add_secret_version_commands
# output and docs/deploy.md) so they never pass through Terraform or its state. Do not add
# google_secret_manager_secret_version resources here: tests/test_terraform.py refuses them.

resource "google_secret_manager_secret" "this" {
  for_each = local.secrets

  project   = var.project_id
  secret_id = each.value
  labels    = local.labels

  replication {
    auto {}
  }

  deletion_protection = var.deletion_protection

  depends_on = [time_sleep.apis_ready]
}
