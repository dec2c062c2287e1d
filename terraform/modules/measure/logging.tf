# Cloud Logging bills every GiB it ingests, and at volume the routine entries are most of a
# deployment's bill (docs/cost.md): Cloud Run's request log of each webhook call, push and sweep,
# and sweep's "sweep finished" summary. This exclusion on the project's _Default sink drops them
# before they are stored, unless ingest_routine_logs is true.
#
# What it keeps: the lines `python -m measure status` builds an event's timeline from (receive's
# "accepted", every "delivery", "retry due", dead letters: issue 21 keeps them by default, priced in
# docs/cost.md), every entry at WARNING or above, request logs of calls that answered 400 or above,
# and everything of other services.
# User-defined log-based metrics are computed from all entries the Logging API receives, excluded
# ones included, so the delivery metrics, the dashboard and the rejected-deliveries alert still
# count every delivery (Google's "Log-based metrics overview").

locals {
  routine_log_filter = join("\n", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=(${join(" OR ", [for n in values(local.function_names) : "\"${n}\""])})",
    "severity<WARNING",
    "(",
    "  (log_id(\"run.googleapis.com/requests\") AND httpRequest.status<400)",
    "  OR jsonPayload.message=\"sweep finished\"",
    ")",
  ])
}

resource "google_logging_project_exclusion" "routine" {
  count = var.ingest_routine_logs ? 0 : 1

  project     = var.project_id
  name        = "${local.prefix}-routine"
  description = "${local.prefix}: request logs below 400 and INFO lines of accepted events and successful deliveries (counted by the log-based metrics, not stored). Set ingest_routine_logs = true to keep them."
  filter      = local.routine_log_filter

  depends_on = [time_sleep.apis_ready]
}
