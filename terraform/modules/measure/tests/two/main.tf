# A root that deploys the module twice into one project, as a studio with two games would: used by
# ../two_instances.tftest.hcl (`run { module { source = "./tests/two" } }`).

terraform {
  required_providers {
    google      = { source = "hashicorp/google" }
    google-beta = { source = "hashicorp/google-beta" }
    archive     = { source = "hashicorp/archive" }
    time        = { source = "hashicorp/time" }
  }
}

variable "prefixes" {
  description = "Deployment key => name_prefix."
  type        = map(string)
  default     = { game1 = "measure", game2 = "measure-game2" }
}

module "measure" {
  source   = "../.."
  for_each = var.prefixes

  project_id    = "studio-measure"
  advertiser_id = "123456"
  site_ids      = { "pc/steam" = "2960" }
  name_prefix   = each.value
}

output "resource_names" {
  description = "Every name of each deployment, by deployment key."
  value       = { for k, m in module.measure : k => m.resource_names }
}

output "subscriptions" {
  description = "Each deployment's subscriptions."
  value       = { for k, m in module.measure : k => m.subscriptions }
}
