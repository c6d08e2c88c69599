variable "project" {
  description = "GCP project id (CASHMATCH_PROJECT)."
  type        = string
}

variable "region" {
  description = "Region of every regional resource (CASHMATCH_REGION)."
  type        = string
  default     = "europe-west1"
}

variable "bucket_name" {
  description = "Cloud Storage bucket for datasets, models and the bus journal (CASHMATCH_BUCKET); defaults to cashmatch-<project>."
  type        = string
  default     = ""
}

variable "dataset_id" {
  description = "BigQuery dataset the collector reads the finance tables from (CASHMATCH_WAREHOUSE = <project>.<dataset_id>)."
  type        = string
  default     = "cashmatch"
}

variable "images" {
  description = "Container image per Cloud Run service (services/<name>/Dockerfile, built by infra/cloudbuild-services.yaml). Keys: collector, trainer, monitor, evaluator, deployer, alerter."
  type        = map(string)

  validation {
    condition = alltrue([
      for s in ["collector", "trainer", "monitor", "evaluator", "deployer", "alerter"] : contains(keys(var.images), s)
    ])
    error_message = "images needs one entry per service: collector, trainer, monitor, evaluator, deployer, alerter."
  }
}

variable "max_delivery_attempts" {
  description = "Push deliveries before Pub/Sub forwards a message to the dead-letter topic (CASHMATCH_MAX_ATTEMPTS on the pull path)."
  type        = number
  default     = 5

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "Pub/Sub allows 5 to 100 delivery attempts."
  }
}

variable "min_backoff" {
  description = "Shortest redelivery backoff of a failed push."
  type        = string
  default     = "10s"
}

variable "max_backoff" {
  description = "Longest redelivery backoff of a failed push (Pub/Sub caps it at 600s)."
  type        = string
  default     = "600s"
}

variable "enable_month_closed_schedule" {
  description = "Publish month.closed from Cloud Scheduler on the 1st of each month. Off by default: the finance system publishes it when the books are closed, which is the real signal."
  type        = bool
  default     = false
}

variable "month_closed_schedule" {
  description = "Cron schedule (in schedule_time_zone) of the optional month.closed job."
  type        = string
  default     = "0 6 1 * *"
}

variable "schedule_time_zone" {
  type    = string
  default = "Europe/Brussels"
}

variable "slack_webhook_secret" {
  description = "Optional Secret Manager secret id holding the Slack webhook URL; mounted into the alerter as SLACK_WEBHOOK_URL. Empty: alerts go to the log only."
  type        = string
  default     = ""
}

variable "enable_gke" {
  description = "Create the GKE Autopilot cluster and install the KubeRay operator for the Ray Serve matcher."
  type        = bool
  default     = true
}

variable "kuberay_operator_version" {
  description = "Helm chart version of kuberay-operator (https://ray-project.github.io/kuberay-helm/)."
  type        = string
  default     = "1.3.2"
}

variable "matcher_namespace" {
  description = "Kubernetes namespace of the RayService (infra/k8s/rayservice.yaml)."
  type        = string
  default     = "default"
}

variable "deletion_protection" {
  description = "Protect the bucket, dataset and cluster from terraform destroy; turn off only for throwaway projects."
  type        = bool
  default     = true
}

variable "gke_authorized_networks" {
  description = "CIDR ranges allowed to reach the GKE control plane (master authorized networks)."
  type        = list(string)
  default     = []
}

variable "serving_build" {
  description = "When the deployer builds the matcher image with Cloud Build (CASHMATCH_SERVING_BUILD): auto (the serving code changed), always, never."
  type        = string
  default     = "auto"

  validation {
    condition     = contains(["auto", "always", "never"], var.serving_build)
    error_message = "serving_build is auto, always or never."
  }
}

variable "enable_vertex_training" {
  description = "Train each candidate as a Vertex AI custom job in the trainer's image (CASHMATCH_VERTEX_TRAINING), not inside the Cloud Run request."
  type        = bool
  default     = false
}

variable "vertex_machine_types" {
  description = "Machine type of the Vertex AI training job by the month's transfers, first bound that holds wins (CASHMATCH_VERTEX_MACHINE_TYPES)."
  type        = string
  default     = "<=50000:n1-standard-4,<=300000:n1-highmem-8,*:n1-highmem-16"
}

variable "enable_vertex_registry" {
  description = "Mirror every champion into Vertex AI Model Registry as a version with the alias champion (CASHMATCH_VERTEX_REGISTRY)."
  type        = bool
  default     = false
}

variable "vertex_serving_image" {
  description = "Serving container image recorded with each model version uploaded to Vertex AI Model Registry (CASHMATCH_VERTEX_SERVING_IMAGE); required with enable_vertex_registry."
  type        = string
  default     = ""
}

variable "approval_required" {
  description = "Hold every roll-out until a person approves it (CASHMATCH_APPROVAL_REQUIRED): `cashmatch approve` or the console's button."
  type        = bool
  default     = false
}

variable "enable_console" {
  description = "Run the web console (services/console) on Cloud Run behind Identity-Aware Proxy; needs images[\"console\"], console_members and a project in an organization."
  type        = bool
  default     = false
}

variable "console_members" {
  description = "Who may open the console through IAP, as IAM members (user:ana@example.com, group:finance-ops@example.com)."
  type        = list(string)
  default     = []
}
