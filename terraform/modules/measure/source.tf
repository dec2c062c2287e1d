# What the functions are built from: exactly main.py, requirements.txt and the modules of the
# measure/ package that main.py imports, nothing else (no tests, no virtualenv, no bytecode, no
# local settings, no tools). The archive is listed file by file through `source` blocks, so a new
# top-level file or directory can never slip into a deployment. What main.py does not import is
# left out by name: measure/ops/ (the operator's CLI: dead letters, backfill, explain) and
# measure/dev/ (sandbox, dev stack, emulator helpers), `python -m measure`
# and the two public re-export modules. tests/test_terraform.py checks that this list is exactly
# main.py's import closure, and that measure/ holds nothing but Python modules.

locals {
  # var.source_dir, or the repository this module sits in (terraform/modules/measure/../../..); a
  # module fetched from git brings the whole repository along, so the default holds there too.
  repo_root = var.source_dir == "" ? "${path.module}/../../.." : var.source_dir

  # Paths under measure/ that never ship, each a prefix: the tools' folders, then what users and
  # operators import but the functions never do. tests/test_layout.py and docs/design.md follow it.
  not_shipped = ["ops/", "dev/", "__main__.py", "signing.py", "links.py", "tune/links.py"]

  source_files = merge(
    {
      "main.py"          = "${local.repo_root}/main.py"
      "requirements.txt" = "${local.repo_root}/requirements.txt"
    },
    {
      for f in fileset("${local.repo_root}/measure", "**/*.py") :
      "measure/${f}" => "${local.repo_root}/measure/${f}"
      if !strcontains(f, "__pycache__") && !anytrue([for n in local.not_shipped : startswith(f, n)])
    },
  )
}

data "archive_file" "source" {
  type = "zip"
  # In the root's build/ (gitignored), one file per deployment: two instances never write the same.
  output_path      = "${path.root}/build/${local.prefix}-source.zip"
  output_file_mode = "0644"

  dynamic "source" {
    for_each = local.source_files
    content {
      filename = source.key
      content  = file(source.value)
    }
  }
}

resource "google_storage_bucket" "source" {
  # checkov:skip=CKV_GCP_62: holds only build inputs; reads and writes are in Cloud Audit Logs, a second access log adds nothing.
  project  = var.project_id
  name     = "${var.project_id}-${local.prefix}-source"
  location = var.region
  labels   = local.labels

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # `terraform destroy` empties it (old versions included) instead of failing on a versioned bucket
  # that is never empty. It holds only build inputs Terraform can upload again.
  force_destroy = true

  versioning {
    enabled = true
  }

  # A new archive replaces the old object (its name is the content hash); the old one stays as a
  # noncurrent version for a month for rollback, then goes.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [time_sleep.apis_ready]
}

resource "google_storage_bucket_object" "source" {
  # Named by content: any change to the code gives a new object, and so a new build and revision.
  name         = "source-${data.archive_file.source.output_md5}.zip"
  bucket       = google_storage_bucket.source.name
  source       = data.archive_file.source.output_path
  content_type = "application/zip"

  lifecycle {
    create_before_destroy = true
  }
}

# Images of the three functions. Cloud Functions would otherwise push to its shared gcf-artifacts
# repository; a repository of our own lets the build account write to it alone and keeps only
# recent images.
resource "google_artifact_registry_repository" "functions" {
  # checkov:skip=CKV_GCP_84: Google-managed encryption for build images that contain no secrets.
  project       = var.project_id
  location      = var.region
  repository_id = "${local.prefix}-functions"
  description   = "Build images of the measure functions (managed by Terraform)."
  format        = "DOCKER"
  labels        = local.labels

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "2592000s"
    }
  }

  depends_on = [time_sleep.apis_ready]
}
