# The settings of terraform/ are the module's (terraform/modules/measure/variables.tf), where each
# is described in full, validated and given its default. Each one here is passed through as is:
# unset, it is null, which the module turns into its default (its variables are nullable = false),
# so a default lives in one place. tests/test_terraform.py checks the two lists stay the same.

variable "name_prefix" {
  description = "Start of every name this deployment creates (functions, topics, subscriptions, secrets, service accounts, bucket, repository, scheduler job, log metrics, alerts, dashboard). The default \"measure\" gives the names measure/config.py expects; a second deployment in the same project (a second game) needs its own, e.g. \"measure-game2\", and its telemetry server and `python -m measure` then need the names from the outputs."
  type        = string
  default     = null
}

variable "project_id" {
  description = "Google Cloud project id to deploy into (it must already exist and have billing enabled)."
  type        = string
}

variable "region" {
  description = "Region for the functions, the source bucket, the build repository and the scheduler job (e.g. us-central1, europe-west1)."
  type        = string
  default     = null
}

variable "scheduler_region" {
  description = "Region of the Cloud Scheduler job that calls sweep, when `region` is one Cloud Scheduler does not run in (e.g. europe-north1). Empty (the default) uses `region`. Must be one of Cloud Scheduler's locations (`gcloud scheduler locations list`); the job calls sweep's URL across regions. Only the name's form is checked at plan: Google adds locations often, and a region without Cloud Scheduler is refused by the first apply, naming the location."
  type        = string
  default     = null
}

variable "advertiser_id" {
  description = "TUNE advertiser id (digits). Becomes MEASURE_ADVERTISER_ID and the host of the default endpoint https://{advertiser_id}.measure.mobileapptracking.com/serve."
  type        = string
}

variable "site_ids" {
  description = "TUNE site id for each \"platform/storefront\" pair the telemetry server sends, e.g. { \"pc/steam\" = \"2960\" }. Becomes MEASURE_SITE_IDS; events for a pair not listed are rejected at the webhook."
  type        = map(string)
}

variable "endpoint_override" {
  description = "Replace the Measurement API endpoint (MEASURE_ENDPOINT), e.g. for a TUNE staging host. Empty (the default) uses https://{advertiser_id}.measure.mobileapptracking.com/serve. Must be https to a public DNS name: loopback names and IP literals are refused so a deployment can never point at the local sandbox."
  type        = string
  default     = null
}

variable "sweep_schedule" {
  description = "Cloud Scheduler cron expression (UTC) for calling sweep, which re-sends due retries. Default: every 5 minutes."
  type        = string
  default     = null
}

variable "retry_max_age_seconds" {
  description = "MEASURE_RETRY_MAX_AGE: how long (seconds) a transiently failing event keeps being retried before it is dead-lettered. Default 7 days; at most 31 days, the retry subscription's retention."
  type        = number
  default     = null
}

variable "event_max_age_seconds" {
  description = "MEASURE_EVENT_MAX_AGE: the webhook rejects events whose time_stamp is older than this many seconds. Default 30 days."
  type        = number
  default     = null
}

variable "secret_ttl_seconds" {
  description = "MEASURE_SECRET_TTL: how long (seconds) a function caches a secret value; a new secret version is picked up within this time."
  type        = number
  default     = null
}

variable "max_instances" {
  description = "Maximum instances per function. sweep defaults to 1 so two sweeps never pull the same retries at once."
  type = object({
    receive = optional(number)
    send    = optional(number)
    sweep   = optional(number)
  })
  default = null
}

variable "concurrency" {
  description = "Concurrent requests per instance (gen2 max_instance_request_concurrency) per function, also its functions-framework THREADS. send waits on the Measurement API, so it runs many at once. Above 1 needs cpu >= 1."
  type = object({
    receive = optional(number)
    send    = optional(number)
    sweep   = optional(number)
  })
  default = null
}

variable "cpu" {
  description = "vCPUs per function instance (available_cpu), e.g. \"1\" or \"0.5\". Cloud Run requires at least 1 when concurrency is above 1."
  type        = string
  default     = null
}

variable "memory" {
  description = "Memory per function instance (available_memory), e.g. \"256M\" or \"512Mi\"."
  type        = string
  default     = null
}

variable "timeout_seconds" {
  description = "Request timeout per function in seconds. send is event-driven (at most 540). sweep's must stay well above its internal time budget and at most 1800, the Cloud Scheduler attempt deadline limit."
  type = object({
    receive = optional(number)
    send    = optional(number)
    sweep   = optional(number)
  })
  default = null
}

variable "sweep_budget_seconds" {
  description = "MEASURE_SWEEP_BUDGET: how long one sweep run keeps pulling and re-sending before it stops and answers. timeout_seconds.sweep must stay at least 60 s above it so a sweep always finishes its last batch."
  type        = number
  default     = null
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channel ids (projects/PROJECT/notificationChannels/ID) that every alert policy notifies. Empty: alerts still open incidents, visible in the console."
  type        = list(string)
  default     = null
}

variable "retry_age_alert_seconds" {
  description = "Alert when the oldest message waiting in the retry subscription (measure-retry-sweeper) is older than this many seconds. Default 6 hours: past the first five backoff steps."
  type        = number
  default     = null
}

variable "rejected_alert_threshold" {
  description = "Alert when more than this many deliveries are rejected (permanent errors) by the Measurement API within 5 minutes. Each rejection is also dead-lettered, which the dead-letter alert reports on its own."
  type        = number
  default     = null
}

variable "labels" {
  description = "Labels added to every resource that takes them (functions, topics, subscriptions, secrets, bucket, repository). \"app = measure\" and \"measure_deployment = <name_prefix>\" are always added."
  type        = map(string)
  default     = null
}

variable "deletion_protection" {
  description = "Protect the three Secret Manager secrets from `terraform destroy`. Set to false and apply before destroying the deployment."
  type        = bool
  default     = null
}

variable "legacy_pubsub_service_agent" {
  description = "Set to true if this project's Pub/Sub service agent was created on or before 8 April 2021: it then needs the Token Creator role on the Eventarc trigger account to sign push requests to send. Newer projects have it already."
  type        = bool
  default     = null
}

variable "receive_public_invoker" {
  description = "Let anyone on the internet reach the webhook (roles/run.invoker for allUsers on measure-receive); receive still refuses every request without a valid Bearer token. Set to false where the organisation policy iam.allowedPolicyMemberDomains (Domain Restricted Sharing) refuses allUsers: then only receive_invokers may call it, sending a Google identity token in X-Serverless-Authorization (docs/deploy.md, \"Without a public webhook\")."
  type        = bool
  default     = null
}

variable "receive_invokers" {
  description = "IAM members granted roles/run.invoker on measure-receive, e.g. [\"serviceAccount:telemetry@studio-prod.iam.gserviceaccount.com\"]: the identity of a telemetry server that authenticates to Cloud Run. Required when receive_public_invoker is false."
  type        = list(string)
  default     = null
}

variable "receive_min_instances" {
  description = "Instances of receive kept warm (min_instance_count), so the first webhook call after a quiet spell does not wait for a cold start. Each one is billed while idle: about $8.10 a month at the default 1 vCPU / 256 MB (docs/cost.md). Default 0."
  type        = number
  default     = null
}

variable "ingest_routine_logs" {
  description = "Store the log entries of work that went right that nothing reads: Cloud Run's request log of every call that answered below 400 (receive, send and sweep) and sweep's INFO line \"sweep finished\". Default false: a logging exclusion drops them before ingestion, which is most of the Cloud Logging bill (docs/cost.md); the log-based metrics, the dashboard and the alerts still count them. The lines `python -m measure status` reads (\"accepted\", every \"delivery\", \"retry due\", dead letters), warnings, errors and failed requests are always kept."
  type        = bool
  default     = null
}

variable "propagation_wait_seconds" {
  description = "Seconds `terraform apply` waits after enabling the APIs and again after the IAM grants the builds and the Eventarc trigger need, before using them. Google documents that both take effect some time after their API call returns (a new project's first apply fails without it); 0 skips the waits, e.g. when re-applying in a project where everything exists."
  type        = number
  default     = null
}

variable "api_max_rps" {
  description = "MEASURE_API_MAX_RPS: the most Measurement API requests per second the whole deployment may send (send and sweep together; each instance keeps under api_max_rps / MEASURE_API_SENDERS, which is max_instances.send + max_instances.sweep). 0 (the default) sets no ceiling. A ceiling divided across many instances is conservative: with 20 send instances and a ceiling of 50, each sends at most 2.4 per second."
  type        = number
  default     = null
}

variable "static_egress_ip" {
  description = "Send the Measurement API requests of send and sweep from one fixed public IPv4 address (output egress_ip), for a TUNE API key restricted to an IP address (docs/deploy.md, \"A fixed egress address\"). Creates a VPC network, a Serverless VPC Access connector, a Cloud Router, Cloud NAT and a reserved address; billed per hour (docs/cost.md). Default false: Google's shared egress addresses."
  type        = bool
  default     = null
}

variable "egress_connector_cidr" {
  description = "The /28 range of the Serverless VPC Access connector when static_egress_ip is true. It must not overlap another range of the deployment's VPC network (measure creates that network for itself, so the default rarely needs changing; a second deployment in the same project has its own network and may reuse it)."
  type        = string
  default     = null
}

variable "silence_alert_seconds" {
  description = "Alert when the webhook has published no accepted event to the events topic for this many seconds (a broken telemetry server looks like a quiet day otherwise). Default 1800 (30 minutes); 0 turns the alert off, e.g. for a game with long quiet hours. Cloud Monitoring accepts 120 to 86400."
  type        = number
  default     = null
}

variable "webhook_4xx_alert_threshold" {
  description = "Alert when the webhook answers more than this many requests with a 4xx status (bad token, bad field, unknown platform/storefront) within 5 minutes: usually a telemetry server sending a wrong token or a new field after an update."
  type        = number
  default     = null
}

variable "log_metric_wait_seconds" {
  description = "Seconds `terraform apply` waits after creating the log-based metrics before creating the alert and dashboard on them: Cloud Monitoring refuses an alert on a log metric it does not serve yet (\"Cannot find metric(s) ... it could take up to 10 minutes\"). Runs once per new metric; should the alert still be refused, run `terraform apply` again."
  type        = number
  default     = null
}
