# Every setting of a measure deployment. Only project_id, advertiser_id and site_ids are required;
# everything else has a default that suits a small studio. Validations mirror measure/config.py so a
# value the functions would refuse at start is refused at plan time instead.
#
# Every optional variable is nullable = false: a caller that passes null (terraform/variables.tf
# passes each of its variables through, null when unset) gets the default below, so the defaults
# live here only.

variable "name_prefix" {
  description = "Start of every name this deployment creates (functions, topics, subscriptions, secrets, service accounts, bucket, repository, scheduler job, log metrics, alerts, dashboard). The default \"measure\" gives the names measure/config.py expects; a second deployment in the same project (a second game) needs its own, e.g. \"measure-game2\", and its telemetry server and `python -m measure` then need the names from the outputs."
  type        = string
  default     = "measure"
  nullable    = false

  validation {
    # 18 characters at most: "<prefix>-scheduler" must fit a service account id (30) and
    # "<prefix>-egress" a VPC Access connector name (25).
    condition     = can(regex("^[a-z]([a-z0-9-]{0,16}[a-z0-9])?$", var.name_prefix))
    error_message = "name_prefix must be 1-18 characters: lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "source_dir" {
  description = "Directory holding main.py, requirements.txt and measure/ (the repository root), which the functions are built from. Empty (the default) uses the repository this module sits in (three levels above it); terraform/main.tf passes its parent explicitly."
  type        = string
  default     = ""
  nullable    = false

  validation {
    condition     = var.source_dir == "" || fileexists("${var.source_dir}/main.py")
    error_message = "source_dir must be the directory that holds main.py, requirements.txt and measure/ (the repository root)."
  }
}

variable "project_id" {
  description = "Google Cloud project id to deploy into (it must already exist and have billing enabled)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project id: 6-30 characters, lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "region" {
  description = "Region for the functions, the source bucket, the build repository and the scheduler job (e.g. us-central1, europe-west1)."
  type        = string
  default     = "us-central1"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z]+(-[a-z]+)+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region name such as us-central1 or europe-west1."
  }
}

variable "scheduler_region" {
  description = "Region of the Cloud Scheduler job that calls sweep, when `region` is one Cloud Scheduler does not run in (e.g. europe-north1). Empty (the default) uses `region`. Must be one of Cloud Scheduler's locations (`gcloud scheduler locations list`); the job calls sweep's URL across regions. Only the name's form is checked at plan: Google adds locations often, and a region without Cloud Scheduler is refused by the first apply, naming the location."
  type        = string
  default     = ""
  nullable    = false

  validation {
    # No list of Cloud Scheduler's locations here: it would go stale with every new region. The API
    # refuses a location it does not serve on the first apply ("Location ... is not found").
    condition     = var.scheduler_region == "" || can(regex("^[a-z]+(-[a-z]+)+[0-9]+$", var.scheduler_region))
    error_message = "scheduler_region must be empty (use region) or a Cloud Scheduler location such as us-central1, europe-west1 or asia-northeast1 (`gcloud scheduler locations list` shows them all)."
  }
}

variable "advertiser_id" {
  description = "TUNE advertiser id (digits). Becomes MEASURE_ADVERTISER_ID and the host of the default endpoint https://{advertiser_id}.measure.mobileapptracking.com/serve."
  type        = string

  validation {
    condition     = can(regex("^[0-9]+$", var.advertiser_id))
    error_message = "advertiser_id must be the numeric TUNE advertiser id, digits only."
  }
}

variable "site_ids" {
  description = "TUNE site id for each \"platform/storefront\" pair the telemetry server sends, e.g. { \"pc/steam\" = \"2960\" }. Becomes MEASURE_SITE_IDS; events for a pair not listed are rejected at the webhook."
  type        = map(string)

  validation {
    condition     = length(var.site_ids) > 0
    error_message = "site_ids must list at least one \"platform/storefront\" = \"site id\" pair."
  }

  validation {
    condition     = alltrue([for k in keys(var.site_ids) : can(regex("^[^/\\s]+/[^/\\s]+$", k))])
    error_message = "Every site_ids key must be \"platform/storefront\" (e.g. \"pc/steam\"): two non-empty parts, one slash, no spaces."
  }

  validation {
    condition     = alltrue([for v in values(var.site_ids) : can(regex("^[0-9]+$", v))])
    error_message = "Every site_ids value must be a numeric TUNE site id, digits only."
  }

  validation {
    condition     = length(distinct([for k in keys(var.site_ids) : lower(k)])) == length(var.site_ids)
    error_message = "site_ids keys are matched case-insensitively: two keys differ only in case."
  }
}

variable "endpoint_override" {
  description = "Replace the Measurement API endpoint (MEASURE_ENDPOINT), e.g. for a TUNE staging host. Empty (the default) uses https://{advertiser_id}.measure.mobileapptracking.com/serve. Must be https to a public DNS name: loopback names and IP literals are refused so a deployment can never point at the local sandbox."
  type        = string
  default     = ""
  nullable    = false

  validation {
    condition     = var.endpoint_override == "" || can(regex("^https://[^\\s@]+$", var.endpoint_override))
    error_message = "endpoint_override must start with https:// and contain no spaces or user@ part (plain http is only for the local sandbox, which a deployment never uses)."
  }

  validation {
    # The host (before any :port) must be a DNS name with an alphabetic last label. That refuses every
    # IP literal (127.0.0.1, [::1], 2130706433, 0x7f.1, 0.0.0.0 ...) and a bare "localhost".
    condition = var.endpoint_override == "" || can(regex(
      "^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]([a-z0-9-]*[a-z0-9])?\\.?$",
      split(":", try(regex("^https://([^/?#]+)", lower(var.endpoint_override))[0], ""))[0]
    ))
    error_message = "endpoint_override must name a DNS host such as api.example.com (no IP address, no localhost)."
  }

  validation {
    # Names that resolve to loopback by convention (*.localhost, localdomain) or through public
    # wildcard DNS (localtest.me, lvh.me, 127.0.0.1.nip.io, 127-0-0-1.sslip.io ...).
    condition = var.endpoint_override == "" || !can(regex(
      "(^|\\.)(localhost|localdomain|localtest\\.me|lvh\\.me)\\.?$|(^|[.-])127[.-][0-9]+[.-][0-9]+[.-][0-9]+([.-]|$)",
      split(":", try(regex("^https://([^/?#]+)", lower(var.endpoint_override))[0], ""))[0]
    ))
    error_message = "endpoint_override names a loopback host (localhost, *.localhost, localtest.me, 127.0.0.1.nip.io ...); a deployment must never reach the local sandbox."
  }
}

variable "sweep_schedule" {
  description = "Cloud Scheduler cron expression (UTC) for calling sweep, which re-sends due retries. Default: every 5 minutes."
  type        = string
  default     = "*/5 * * * *"
  nullable    = false

  validation {
    condition     = length(split(" ", trimspace(var.sweep_schedule))) == 5 && can(regex("^[0-9*/,-]+( [0-9A-Za-z*/,-]+){4}$", trimspace(var.sweep_schedule)))
    error_message = "sweep_schedule must be a five-field unix-cron expression such as \"*/5 * * * *\"."
  }
}

variable "retry_max_age_seconds" {
  description = "MEASURE_RETRY_MAX_AGE: how long (seconds) a transiently failing event keeps being retried before it is dead-lettered. Default 7 days; at most 31 days, the retry subscription's retention."
  type        = number
  default     = 604800
  nullable    = false

  validation {
    condition     = var.retry_max_age_seconds == floor(var.retry_max_age_seconds) && var.retry_max_age_seconds >= 60 && var.retry_max_age_seconds <= 2678400
    error_message = "retry_max_age_seconds must be a whole number between 60 and 2678400 (31 days, Pub/Sub's maximum retention)."
  }
}

variable "event_max_age_seconds" {
  description = "MEASURE_EVENT_MAX_AGE: the webhook rejects events whose time_stamp is older than this many seconds. Default 30 days."
  type        = number
  default     = 2592000
  nullable    = false

  validation {
    condition     = var.event_max_age_seconds == floor(var.event_max_age_seconds) && var.event_max_age_seconds >= 60 && var.event_max_age_seconds <= 31622400
    error_message = "event_max_age_seconds must be a whole number between 60 and 31622400 (366 days)."
  }
}

variable "secret_ttl_seconds" {
  description = "MEASURE_SECRET_TTL: how long (seconds) a function caches a secret value; a new secret version is picked up within this time."
  type        = number
  default     = 300
  nullable    = false

  validation {
    condition     = var.secret_ttl_seconds == floor(var.secret_ttl_seconds) && var.secret_ttl_seconds >= 0 && var.secret_ttl_seconds <= 900
    error_message = "secret_ttl_seconds must be a whole number between 0 and 900 (MEASURE_SECRET_TTL's limit: a revoked token must stop working soon)."
  }
}

variable "max_instances" {
  description = "Maximum instances per function. sweep defaults to 1 so two sweeps never pull the same retries at once."
  type = object({
    receive = optional(number, 20)
    send    = optional(number, 20)
    sweep   = optional(number, 1)
  })
  default  = {}
  nullable = false

  validation {
    condition     = alltrue([for v in values(var.max_instances) : v == floor(v) && v >= 1 && v <= 1000])
    error_message = "Each max_instances value must be a whole number between 1 and 1000."
  }
}

variable "concurrency" {
  description = "Concurrent requests per instance (gen2 max_instance_request_concurrency) per function, also its functions-framework THREADS. send waits on the Measurement API, so it runs many at once. Above 1 needs cpu >= 1."
  type = object({
    receive = optional(number, 16)
    send    = optional(number, 64)
    sweep   = optional(number, 1)
  })
  default  = {}
  nullable = false

  validation {
    condition     = alltrue([for v in values(var.concurrency) : v == floor(v) && v >= 1 && v <= 1000])
    error_message = "Each concurrency value must be a whole number between 1 and 1000."
  }
}

variable "cpu" {
  description = "vCPUs per function instance (available_cpu), e.g. \"1\" or \"0.5\". Cloud Run requires at least 1 when concurrency is above 1."
  type        = string
  default     = "1"
  nullable    = false

  validation {
    condition     = can(tonumber(var.cpu)) && try(tonumber(var.cpu) > 0 && tonumber(var.cpu) <= 8, false)
    error_message = "cpu must be a number of vCPUs greater than 0 and at most 8, written as a string (\"1\", \"0.5\")."
  }
}

variable "memory" {
  description = "Memory per function instance (available_memory), e.g. \"256M\" or \"512Mi\"."
  type        = string
  default     = "256M"
  nullable    = false

  validation {
    condition     = can(regex("^[1-9][0-9]*(k|M|G|Mi|Gi)$", var.memory))
    error_message = "memory must be a whole number followed by k, M, G, Mi or Gi, e.g. \"256M\"."
  }
}

variable "timeout_seconds" {
  description = "Request timeout per function in seconds. send is event-driven (at most 540). sweep's must stay well above its internal time budget and at most 1800, the Cloud Scheduler attempt deadline limit."
  type = object({
    receive = optional(number, 60)
    send    = optional(number, 120)
    sweep   = optional(number, 540)
  })
  default  = {}
  nullable = false

  validation {
    condition     = alltrue([for v in values(var.timeout_seconds) : v == floor(v) && v >= 1])
    error_message = "Each timeout_seconds value must be a whole number of seconds, at least 1."
  }

  validation {
    condition     = var.timeout_seconds.receive <= 3600
    error_message = "timeout_seconds.receive must be at most 3600 (HTTP functions)."
  }

  validation {
    condition     = var.timeout_seconds.send <= 540
    error_message = "timeout_seconds.send must be at most 540 (event-driven functions)."
  }

  validation {
    condition     = var.timeout_seconds.sweep >= 60 && var.timeout_seconds.sweep <= 1800
    error_message = "timeout_seconds.sweep must be between 60 and 1800 (Cloud Scheduler's longest attempt deadline)."
  }
}

variable "sweep_budget_seconds" {
  description = "MEASURE_SWEEP_BUDGET: how long one sweep run keeps pulling and re-sending before it stops and answers. timeout_seconds.sweep must stay at least 60 s above it so a sweep always finishes its last batch."
  type        = number
  default     = 240
  nullable    = false

  validation {
    condition     = var.sweep_budget_seconds == floor(var.sweep_budget_seconds) && var.sweep_budget_seconds >= 30 && var.sweep_budget_seconds <= 1740
    error_message = "sweep_budget_seconds must be a whole number between 30 and 1740 (1800, the longest scheduler attempt, minus 60)."
  }
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channel ids (projects/PROJECT/notificationChannels/ID) that every alert policy notifies. Empty: alerts still open incidents, visible in the console."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for c in var.notification_channels : can(regex("^projects/[^/]+/notificationChannels/[0-9]+$", c))])
    error_message = "Each notification channel must be a full id: projects/PROJECT/notificationChannels/NUMBER."
  }
}

variable "retry_age_alert_seconds" {
  description = "Alert when the oldest message waiting in the retry subscription (measure-retry-sweeper) is older than this many seconds. Default 6 hours: past the first five backoff steps."
  type        = number
  default     = 21600
  nullable    = false

  validation {
    condition     = var.retry_age_alert_seconds >= 300 && var.retry_age_alert_seconds <= 2678400
    error_message = "retry_age_alert_seconds must be between 300 and 2678400 (31 days)."
  }
}

variable "rejected_alert_threshold" {
  description = "Alert when more than this many deliveries are rejected (permanent errors) by the Measurement API within 5 minutes. Each rejection is also dead-lettered, which the dead-letter alert reports on its own."
  type        = number
  default     = 10
  nullable    = false

  validation {
    condition     = var.rejected_alert_threshold >= 0 && var.rejected_alert_threshold == floor(var.rejected_alert_threshold)
    error_message = "rejected_alert_threshold must be a whole number, 0 or more."
  }
}

variable "labels" {
  description = "Labels added to every resource that takes them (functions, topics, subscriptions, secrets, bucket, repository). \"app = measure\" and \"measure_deployment = <name_prefix>\" are always added."
  type        = map(string)
  default     = {}
  nullable    = false

  validation {
    condition     = alltrue([for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))])
    error_message = "Label keys must start with a lowercase letter; keys and values may hold lowercase letters, digits, _ and - (at most 63 characters)."
  }
}

variable "deletion_protection" {
  description = "Protect the three Secret Manager secrets from `terraform destroy`. Set to false and apply before destroying the deployment."
  type        = bool
  default     = true
  nullable    = false
}

variable "legacy_pubsub_service_agent" {
  description = "Set to true if this project's Pub/Sub service agent was created on or before 8 April 2021: it then needs the Token Creator role on the Eventarc trigger account to sign push requests to send. Newer projects have it already."
  type        = bool
  default     = false
  nullable    = false
}

variable "receive_public_invoker" {
  description = "Let anyone on the internet reach the webhook (roles/run.invoker for allUsers on measure-receive); receive still refuses every request without a valid Bearer token. Set to false where the organisation policy iam.allowedPolicyMemberDomains (Domain Restricted Sharing) refuses allUsers: then only receive_invokers may call it, sending a Google identity token in X-Serverless-Authorization (docs/deploy.md, \"Without a public webhook\")."
  type        = bool
  default     = true
  nullable    = false
}

variable "receive_invokers" {
  description = "IAM members granted roles/run.invoker on measure-receive, e.g. [\"serviceAccount:telemetry@studio-prod.iam.gserviceaccount.com\"]: the identity of a telemetry server that authenticates to Cloud Run. Required when receive_public_invoker is false."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for m in var.receive_invokers : can(regex("^(serviceAccount|user|group|domain|principal|principalSet):[^\\s]+$", m))])
    error_message = "Each receive_invokers entry must be an IAM member such as serviceAccount:NAME@PROJECT.iam.gserviceaccount.com, group:ops@example.com or principal://... (public access is what receive_public_invoker is for)."
  }
}

variable "receive_min_instances" {
  description = "Instances of receive kept warm (min_instance_count), so the first webhook call after a quiet spell does not wait for a cold start. Each one is billed while idle: about $8.10 a month at the default 1 vCPU / 256 MB (docs/cost.md). Default 0."
  type        = number
  default     = 0
  nullable    = false

  validation {
    condition     = var.receive_min_instances == floor(var.receive_min_instances) && var.receive_min_instances >= 0 && var.receive_min_instances <= 100
    error_message = "receive_min_instances must be a whole number between 0 and 100."
  }
}

variable "ingest_routine_logs" {
  description = "Store the log entries of work that went right that nothing reads: Cloud Run's request log of every call that answered below 400 (receive, send and sweep) and sweep's INFO line \"sweep finished\". Default false: a logging exclusion drops them before ingestion, which is most of the Cloud Logging bill (docs/cost.md); the log-based metrics, the dashboard and the alerts still count them. The lines `python -m measure status` reads (\"accepted\", every \"delivery\", \"retry due\", dead letters), warnings, errors and failed requests are always kept."
  type        = bool
  default     = false
  nullable    = false
}

variable "propagation_wait_seconds" {
  description = "Seconds `terraform apply` waits after enabling the APIs and again after the IAM grants the builds and the Eventarc trigger need, before using them. Google documents that both take effect some time after their API call returns (a new project's first apply fails without it); 0 skips the waits, e.g. when re-applying in a project where everything exists."
  type        = number
  default     = 90
  nullable    = false

  validation {
    condition     = var.propagation_wait_seconds == floor(var.propagation_wait_seconds) && var.propagation_wait_seconds >= 0 && var.propagation_wait_seconds <= 900
    error_message = "propagation_wait_seconds must be a whole number between 0 and 900."
  }
}

variable "api_max_rps" {
  description = "MEASURE_API_MAX_RPS: the most Measurement API requests per second the whole deployment may send (send and sweep together; each instance keeps under api_max_rps / MEASURE_API_SENDERS, which is max_instances.send + max_instances.sweep). 0 (the default) sets no ceiling. A ceiling divided across many instances is conservative: with 20 send instances and a ceiling of 50, each sends at most 2.4 per second."
  type        = number
  default     = 0
  nullable    = false

  validation {
    condition     = var.api_max_rps >= 0 && var.api_max_rps <= 100000
    error_message = "api_max_rps must be 0 (no ceiling) or a number of requests per second above 0, at most 100000."
  }
}

variable "static_egress_ip" {
  description = "Send the Measurement API requests of send and sweep from one fixed public IPv4 address (output egress_ip), for a TUNE API key restricted to an IP address (docs/deploy.md, \"A fixed egress address\"). Creates a VPC network, a Serverless VPC Access connector, a Cloud Router, Cloud NAT and a reserved address; billed per hour (docs/cost.md). Default false: Google's shared egress addresses."
  type        = bool
  default     = false
  nullable    = false
}

variable "egress_connector_cidr" {
  description = "The /28 range of the Serverless VPC Access connector when static_egress_ip is true. It must not overlap another range of the deployment's VPC network (measure creates that network for itself, so the default rarely needs changing; a second deployment in the same project has its own network and may reuse it)."
  type        = string
  default     = "10.8.0.0/28"
  nullable    = false

  validation {
    condition     = can(regex("^[0-9]+(\\.[0-9]+){3}/28$", var.egress_connector_cidr)) && can(cidrhost(var.egress_connector_cidr, 0))
    error_message = "egress_connector_cidr must be an IPv4 /28 range such as 10.8.0.0/28 (a VPC Access connector takes exactly a /28)."
  }
}

variable "silence_alert_seconds" {
  description = "Alert when the webhook has published no accepted event to the events topic for this many seconds (a broken telemetry server looks like a quiet day otherwise). Default 1800 (30 minutes); 0 turns the alert off, e.g. for a game with long quiet hours. Cloud Monitoring accepts 120 to 86400."
  type        = number
  default     = 1800
  nullable    = false

  validation {
    condition     = var.silence_alert_seconds == 0 || (var.silence_alert_seconds == floor(var.silence_alert_seconds) && var.silence_alert_seconds >= 120 && var.silence_alert_seconds <= 86400)
    error_message = "silence_alert_seconds must be 0 (off) or a whole number of seconds between 120 and 86400."
  }
}

variable "webhook_4xx_alert_threshold" {
  description = "Alert when the webhook answers more than this many requests with a 4xx status (bad token, bad field, unknown platform/storefront) within 5 minutes: usually a telemetry server sending a wrong token or a new field after an update."
  type        = number
  default     = 50
  nullable    = false

  validation {
    condition     = var.webhook_4xx_alert_threshold >= 0 && var.webhook_4xx_alert_threshold == floor(var.webhook_4xx_alert_threshold)
    error_message = "webhook_4xx_alert_threshold must be a whole number, 0 or more."
  }
}

variable "log_metric_wait_seconds" {
  description = "Seconds `terraform apply` waits after creating the log-based metrics before creating the alert and dashboard on them: Cloud Monitoring refuses an alert on a log metric it does not serve yet (\"Cannot find metric(s) ... it could take up to 10 minutes\"). Runs once per new metric; should the alert still be refused, run `terraform apply` again."
  type        = number
  default     = 180
  nullable    = false

  validation {
    condition     = var.log_metric_wait_seconds == floor(var.log_metric_wait_seconds) && var.log_metric_wait_seconds >= 0 && var.log_metric_wait_seconds <= 900
    error_message = "log_metric_wait_seconds must be a whole number between 0 and 900."
  }
}
