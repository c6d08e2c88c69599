# The gcp stack of cashmatch: storage, warehouse, the event bus (Pub/Sub push to Cloud Run) and
# one least-privilege identity per service. The matcher's GKE cluster is in gke.tf.
#
# Names match the code exactly, so nothing maps between them: topic ids ARE the event topics
# of cashmatch.domain.events ("month.closed", ...: dots are legal in Pub/Sub ids), subscription
# ids ARE the keys of cashmatch.domain.subscriptions.SUBSCRIPTIONS, and the dead-letter topic is
# its DEAD_LETTER_TOPIC.
# PubSubEventBus (shared/src/cashmatch/adapters/gcp/bus/) builds projects/<p>/topics/<topic>
# from the same names, and infra/check_infra.py fails when the two drift apart.

data "google_project" "this" {
  project_id = var.project
}

locals {
  bucket_name = var.bucket_name != "" ? var.bucket_name : "cashmatch-${var.project}"

  # Every event type of shared/src/cashmatch/domain/events.py has its topic, subscribed to or not.
  event_topics = [
    "month.closed",
    "dataset.ready",
    "model.trained",
    "evaluation.passed",
    "evaluation.rejected",
    "model.deployed",
    "drift.detected",
    "performance.breached",
  ]
  dead_letter_topic = "dead-letter"

  # cashmatch.domain.subscriptions.SUBSCRIPTIONS, plus the Cloud Run service that receives each one: the
  # alerter is one service behind four subscriptions (services/alerter/main.py), the deployer
  # behind two (roll-outs and the guardrail, services/deployer/main.py), the monitor
  # behind two (each close, and the estimate at each roll-out, services/monitor/main.py).
  subscriptions = {
    "collector"      = { topic = "month.closed", service = "collector" }
    "trainer"        = { topic = "dataset.ready", service = "trainer" }
    "monitor"        = { topic = "dataset.ready", service = "monitor" }
    "evaluator"      = { topic = "model.trained", service = "evaluator" }
    "deployer"       = { topic = "evaluation.passed", service = "deployer" }
    "alert-rejected" = { topic = "evaluation.rejected", service = "alerter" }
    "alert-deployed" = { topic = "model.deployed", service = "alerter" }
    "alert-drift"    = { topic = "drift.detected", service = "alerter" }
    "guardrail"      = { topic = "performance.breached", service = "deployer" }
    "alert-breached" = { topic = "performance.breached", service = "alerter" }
    "estimator"      = { topic = "model.deployed", service = "monitor" }
  }

  # What each service publishes, so its identity may publish there and nowhere else.
  # timeout_s is also the subscription's ack deadline: Pub/Sub stops waiting for a push at
  # 600 s and redelivers, so a longer Cloud Run timeout would only run a handler twice.
  # Batch services take one event per instance (concurrency 1): training is CPU-bound.
  services = {
    collector = { publishes = ["dataset.ready"], timeout_s = 600, cpu = "2", memory = "4Gi", concurrency = 1 }
    trainer   = { publishes = ["model.trained"], timeout_s = 600, cpu = "4", memory = "8Gi", concurrency = 1 }
    monitor   = { publishes = ["drift.detected", "performance.breached"], timeout_s = 600, cpu = "2", memory = "4Gi", concurrency = 1 }
    evaluator = { publishes = ["evaluation.passed", "evaluation.rejected"], timeout_s = 600, cpu = "2", memory = "4Gi", concurrency = 1 }
    deployer  = { publishes = ["model.deployed"], timeout_s = 600, cpu = "1", memory = "1Gi", concurrency = 1 }
    alerter   = { publishes = [], timeout_s = 60, cpu = "1", memory = "512Mi", concurrency = 10 }
  }

  # (service, topic) pairs for the publisher grants.
  publish_grants = merge([
    for svc, cfg in local.services : {
      for topic in cfg.publishes : "${svc}/${topic}" => { service = svc, topic = topic }
    }
  ]...)

  # A custom audience per service rather than its URL: the URL is known only after the service
  # exists, and the service must be told its audience (CASHMATCH_PUSH_AUDIENCE) when created.
  # Cloud Run's own IAM check accepts it because it is listed in custom_audiences.
  push_audience = { for svc in keys(local.services) : svc => "cashmatch-${svc}" }

  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  common_env = {
    CASHMATCH_STACK                = "gcp"
    CASHMATCH_PROJECT              = var.project
    CASHMATCH_REGION               = var.region
    CASHMATCH_BUCKET               = google_storage_bucket.data.name
    CASHMATCH_WAREHOUSE            = "${var.project}.${google_bigquery_dataset.warehouse.dataset_id}"
    CASHMATCH_PUSH_SERVICE_ACCOUNT = google_service_account.push.email
    CASHMATCH_MAX_ATTEMPTS         = tostring(var.max_delivery_attempts)
    CASHMATCH_APPROVAL_REQUIRED    = tostring(var.approval_required)
  }

  image_repository = "${var.region}-docker.pkg.dev/${var.project}/${google_artifact_registry_repository.images.repository_id}"

  # Settings only one service needs (shared/src/cashmatch/settings.py): the deployer rolls champions out to
  # the RayService (and builds the matcher image), the trainer may train on Vertex AI, the
  # evaluator may mirror champions into Vertex AI Model Registry. Empty when switched off.
  service_env = {
    deployer = var.enable_gke ? {
      CASHMATCH_GKE_ENDPOINT             = "https://${google_container_cluster.matcher[0].endpoint}"
      CASHMATCH_GKE_CA_CERTIFICATE       = google_container_cluster.matcher[0].master_auth[0].cluster_ca_certificate
      CASHMATCH_GKE_NAMESPACE            = var.matcher_namespace
      CASHMATCH_SERVING_BUILD            = var.serving_build
      CASHMATCH_SERVING_IMAGE_REPOSITORY = "${local.image_repository}/matcher"
      CASHMATCH_BUILD_SERVICE_ACCOUNT    = google_service_account.build.email
    } : {}
    trainer = var.enable_vertex_training ? {
      CASHMATCH_VERTEX_TRAINING        = "true"
      CASHMATCH_VERTEX_TRAINING_IMAGE  = var.images["trainer"]
      CASHMATCH_VERTEX_MACHINE_TYPES   = var.vertex_machine_types
      CASHMATCH_VERTEX_SERVICE_ACCOUNT = google_service_account.train_job[0].email
    } : {}
    evaluator = var.enable_vertex_registry ? {
      CASHMATCH_VERTEX_REGISTRY      = "true"
      CASHMATCH_VERTEX_SERVING_IMAGE = var.vertex_serving_image
    } : {}
  }
}

# --- APIs --------------------------------------------------------------------------------------

resource "google_project_service" "apis" {
  for_each = toset([
    "aiplatform.googleapis.com",
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudscheduler.googleapis.com",
    "container.googleapis.com",
    "iam.googleapis.com",
    "iap.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ])
  service = each.value
  # Turning an API off would break whatever else in the project uses it.
  disable_on_destroy = false
}

# --- storage and warehouse ---------------------------------------------------------------------

# Datasets, models, the registry and the bus journal. Versioning keeps the history of the
# registry's pointer objects (champion, verdicts), so an overwrite is never the only copy.
resource "google_storage_bucket" "data" {
  # checkov:skip=CKV_GCP_62:access is audited with Cloud Audit Logs (data access), not legacy bucket access logs
  name                        = local.bucket_name
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection

  versioning {
    enabled = true
  }

  # Noncurrent versions are only a safety net; keep them for 90 days, not forever.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 90
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

# The finance tables the collector reads; loaded by the finance system, not by Terraform.
resource "google_bigquery_dataset" "warehouse" {
  # checkov:skip=CKV_GCP_81:Google-managed encryption; add default_encryption_configuration when a CMEK policy applies
  dataset_id                 = var.dataset_id
  location                   = var.region
  description                = "cashmatch: transfers, invoices and reviewed matches (read by the collector)"
  delete_contents_on_destroy = !var.deletion_protection

  depends_on = [google_project_service.apis]
}

# Service images (services/<name>/Dockerfile) and the matcher image Cloud Build builds.
resource "google_artifact_registry_repository" "images" {
  # checkov:skip=CKV_GCP_84:Google-managed encryption; images hold code, not customer data
  repository_id = "cashmatch"
  location      = var.region
  format        = "DOCKER"
  description   = "cashmatch service and matcher images"

  depends_on = [google_project_service.apis]
}

# --- topics ------------------------------------------------------------------------------------

resource "google_pubsub_topic" "events" {
  # checkov:skip=CKV_GCP_83:Google-managed encryption; events carry ids and URIs, not the data itself
  for_each = toset(local.event_topics)
  name     = each.value

  depends_on = [google_project_service.apis]
}

# Both Pub/Sub (after max_delivery_attempts failed pushes) and the entry point (a parked,
# permanently bad event) publish here.
resource "google_pubsub_topic" "dead_letter" {
  # checkov:skip=CKV_GCP_83:Google-managed encryption, as for the event topics
  name = local.dead_letter_topic

  depends_on = [google_project_service.apis]
}

# A topic without a subscription drops what is published to it: this keeps dead letters for
# a person to read (`gcloud pubsub subscriptions pull dead-letter-inbox`) and redrive.
resource "google_pubsub_subscription" "dead_letter_inbox" {
  name                       = "dead-letter-inbox"
  topic                      = google_pubsub_topic.dead_letter.id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  retain_acked_messages      = true

  expiration_policy {
    ttl = ""
  }
}

# --- identities --------------------------------------------------------------------------------

resource "google_service_account" "service" {
  for_each     = local.services
  account_id   = "cashmatch-${each.key}"
  display_name = "cashmatch ${each.key} (Cloud Run)"
}

# The identity Pub/Sub signs push tokens as; the only principal allowed to invoke the services.
resource "google_service_account" "push" {
  account_id   = "cashmatch-push"
  display_name = "cashmatch Pub/Sub push invoker"
}

# Every service writes the bus journal (bus/ in the bucket: publish dedup, parked messages) and
# reads or writes datasets and models, so every one needs object read/write on this bucket
# only. objectUser, not objectAdmin: nothing here manages object ACLs or IAM.
resource "google_storage_bucket_iam_member" "service_objects" {
  for_each = local.services
  bucket   = google_storage_bucket.data.name
  role     = "roles/storage.objectUser"
  member   = google_service_account.service[each.key].member
}

resource "google_pubsub_topic_iam_member" "service_publishes" {
  for_each = local.publish_grants
  topic    = google_pubsub_topic.events[each.value.topic].id
  role     = "roles/pubsub.publisher"
  member   = google_service_account.service[each.value.service].member
}

# shared/src/cashmatch/entrypoints/cloud_event.py parks a permanently failing event on the dead-letter topic itself
# (and answers 2xx), so every service, the alerter included, publishes there.
resource "google_pubsub_topic_iam_member" "service_parks" {
  for_each = local.services
  topic    = google_pubsub_topic.dead_letter.id
  role     = "roles/pubsub.publisher"
  member   = google_service_account.service[each.key].member
}

# The collector reads the finance tables and runs query jobs (jobs live in the project).
# The collector reads the warehouse for datasets; the monitor replays each closed month's
# decisions from it (realized performance, shared/src/cashmatch/service_layer/performance.py).
resource "google_bigquery_dataset_iam_member" "warehouse_readers" {
  for_each   = toset(["collector", "monitor"])
  dataset_id = google_bigquery_dataset.warehouse.dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = google_service_account.service[each.key].member
}

resource "google_project_iam_member" "warehouse_jobs" {
  for_each = toset(["collector", "monitor"])
  project  = var.project
  role     = "roles/bigquery.jobUser"
  member   = google_service_account.service[each.key].member
}

# The deployer builds the matcher image with Cloud Build (shared/src/cashmatch/adapters/gcp/cloud_build.py:
# create, list and get builds) and patches the RayService's user_config on GKE
# (shared/src/cashmatch/adapters/gcp/gke_serving.py: get/patch rayservices, get services/proxy for /v1/model).
resource "google_project_iam_member" "deployer_builds" {
  # checkov:skip=CKV_GCP_49:builds.editor is project-level by nature; the deployer may actAs only the build account below, which holds no project roles but log writing
  project = var.project
  role    = "roles/cloudbuild.builds.editor"
  member  = google_service_account.service["deployer"].member
}

resource "google_project_iam_member" "deployer_gke" {
  project = var.project
  role    = "roles/container.developer"
  member  = google_service_account.service["deployer"].member
}

# Builds run as this account instead of the broad default Cloud Build one; the deployer passes
# it as serviceAccount in the build request, which needs actAs on it.
resource "google_service_account" "build" {
  account_id   = "cashmatch-build"
  display_name = "cashmatch matcher image builds (Cloud Build)"
}

resource "google_service_account_iam_member" "deployer_acts_as_build" {
  service_account_id = google_service_account.build.name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.service["deployer"].member
}

resource "google_storage_bucket_iam_member" "build_reads_source" {
  bucket = google_storage_bucket.data.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.build.member
}

resource "google_artifact_registry_repository_iam_member" "build_pushes" {
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.build.member
}

resource "google_project_iam_member" "build_logs" {
  project = var.project
  role    = "roles/logging.logWriter"
  member  = google_service_account.build.member
}

# --- Vertex AI (optional) ----------------------------------------------------------------------

# Training as a Vertex AI custom job (CASHMATCH_VERTEX_TRAINING): the trainer creates and polls
# jobs, which run as their own account; that account only reads datasets and writes models in
# the bucket (shared/src/cashmatch/entrypoints/vertex_job.py needs nothing else).
resource "google_service_account" "train_job" {
  count        = var.enable_vertex_training ? 1 : 0
  account_id   = "cashmatch-train-job"
  display_name = "cashmatch training jobs (Vertex AI custom jobs)"
}

resource "google_storage_bucket_iam_member" "train_job_objects" {
  count  = var.enable_vertex_training ? 1 : 0
  bucket = google_storage_bucket.data.name
  role   = "roles/storage.objectUser"
  member = google_service_account.train_job[0].member
}

resource "google_project_iam_member" "trainer_vertex_jobs" {
  count   = var.enable_vertex_training ? 1 : 0
  project = var.project
  role    = "roles/aiplatform.user"
  member  = google_service_account.service["trainer"].member
}

# Creating a job that runs as train_job needs actAs on that account, and on that one only.
resource "google_service_account_iam_member" "trainer_acts_as_train_job" {
  count              = var.enable_vertex_training ? 1 : 0
  service_account_id = google_service_account.train_job[0].name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.service["trainer"].member
}

# Mirroring champions into Vertex AI Model Registry (CASHMATCH_VERTEX_REGISTRY): upload a model
# version, list versions, move the champion alias.
resource "google_project_iam_member" "evaluator_vertex_models" {
  count   = var.enable_vertex_registry ? 1 : 0
  project = var.project
  role    = "roles/aiplatform.user"
  member  = google_service_account.service["evaluator"].member
}

# --- Pub/Sub service agent ---------------------------------------------------------------------

# Forwarding to a dead-letter topic is done by Pub/Sub's own agent: it must publish there and
# subscribe (to ack the forwarded message) on every subscription with a dead_letter_policy.
resource "google_pubsub_topic_iam_member" "agent_dead_letters" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "agent_subscribes" {
  for_each     = local.subscriptions
  subscription = google_pubsub_subscription.push[each.key].id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# Projects older than April 2021 need this for the agent to mint the push OIDC tokens; scoped
# to the push account only.
resource "google_service_account_iam_member" "agent_mints_push_tokens" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

# --- Cloud Run services ------------------------------------------------------------------------

resource "google_cloud_run_v2_service" "service" {
  for_each = local.services
  name     = "cashmatch-${each.key}"
  location = var.region
  # Pub/Sub push from this project counts as internal traffic, so nothing public can even
  # reach the services; and every request still needs run.invoker (only the push account).
  ingress             = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  custom_audiences    = [local.push_audience[each.key]]
  deletion_protection = var.deletion_protection

  template {
    service_account                  = google_service_account.service[each.key].email
    timeout                          = "${each.value.timeout_s}s"
    max_instance_request_concurrency = each.value.concurrency

    # Scale to zero: events come a few times a month.
    scaling {
      min_instance_count = 0
      max_instance_count = 3
    }

    containers {
      image = var.images[each.key]

      resources {
        limits = {
          cpu    = each.value.cpu
          memory = each.value.memory
        }
        cpu_idle = true
      }

      dynamic "env" {
        for_each = merge(
          local.common_env,
          lookup(local.service_env, each.key, {}),
          { CASHMATCH_PUSH_AUDIENCE = local.push_audience[each.key] },
        )
        content {
          name  = env.key
          value = env.value
        }
      }

      # The webhook is a secret: never a plain env value, never a CASHMATCH_ setting.
      dynamic "env" {
        for_each = each.key == "alerter" && var.slack_webhook_secret != "" ? [var.slack_webhook_secret] : []
        content {
          name = "SLACK_WEBHOOK_URL"
          value_source {
            secret_key_ref {
              secret  = env.value
              version = "latest"
            }
          }
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = !var.enable_vertex_registry || var.vertex_serving_image != ""
      error_message = "enable_vertex_registry needs vertex_serving_image (CASHMATCH_VERTEX_SERVING_IMAGE)."
    }
  }

  depends_on = [
    google_project_service.apis,
    google_secret_manager_secret_iam_member.alerter_webhook,
  ]
}

resource "google_secret_manager_secret_iam_member" "alerter_webhook" {
  count     = var.slack_webhook_secret != "" ? 1 : 0
  secret_id = var.slack_webhook_secret
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.service["alerter"].member
}

resource "google_cloud_run_v2_service_iam_member" "push_invokes" {
  for_each = local.services
  name     = google_cloud_run_v2_service.service[each.key].name
  location = var.region
  role     = "roles/run.invoker"
  member   = google_service_account.push.member
}

# --- push subscriptions ------------------------------------------------------------------------

resource "google_pubsub_subscription" "push" {
  for_each = local.subscriptions
  name     = each.key
  topic    = google_pubsub_topic.events[each.value.topic].id

  ack_deadline_seconds       = local.services[each.value.service].timeout_s
  message_retention_duration = "604800s"

  # `cashmatch redrive` republishes a dead message addressed to one subscription only
  # (shared/src/cashmatch/adapters/gcp/bus/); the others must not receive it a second time.
  filter = "NOT attributes:cashmatch_only_for OR attributes.cashmatch_only_for = \"${each.key}\""

  push_config {
    push_endpoint = google_cloud_run_v2_service.service[each.value.service].uri
    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = local.push_audience[each.value.service]
    }
  }

  # A handler raises (HTTP 500) only for failures that may pass; after max attempts the
  # message goes to the dead-letter topic instead of being retried for 7 days.
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  retry_policy {
    minimum_backoff = var.min_backoff
    maximum_backoff = var.max_backoff
  }

  # month.closed comes once a month; the default 31-day inactivity expiry would delete the
  # subscription between two closes.
  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_cloud_run_v2_service_iam_member.push_invokes,
    google_pubsub_topic_iam_member.agent_dead_letters,
  ]
}

# --- optional monthly month.closed -------------------------------------------------------------

# Cloud Scheduler can only publish a fixed body, but month.closed must name the month, so the
# schedule runs a one-shot Cloud Run job in the collector's image that publishes it for the
# previous month (`python -m cashmatch.entrypoints.close_month`: no CLI, which that image does
# not install; the event id is derived from the month, so a retried job publishes it once).
resource "google_service_account" "closer" {
  count        = var.enable_month_closed_schedule ? 1 : 0
  account_id   = "cashmatch-month-closer"
  display_name = "cashmatch scheduled month.closed"
}

resource "google_pubsub_topic_iam_member" "closer_publishes" {
  count  = var.enable_month_closed_schedule ? 1 : 0
  topic  = google_pubsub_topic.events["month.closed"].id
  role   = "roles/pubsub.publisher"
  member = google_service_account.closer[0].member
}

# Publishing writes the bus journal (deduplication) in the bucket.
resource "google_storage_bucket_iam_member" "closer_journal" {
  count  = var.enable_month_closed_schedule ? 1 : 0
  bucket = google_storage_bucket.data.name
  role   = "roles/storage.objectUser"
  member = google_service_account.closer[0].member
}

resource "google_cloud_run_v2_job" "close_month" {
  count               = var.enable_month_closed_schedule ? 1 : 0
  name                = "cashmatch-close-month"
  location            = var.region
  deletion_protection = false

  template {
    task_count = 1
    template {
      service_account = google_service_account.closer[0].email
      max_retries     = 1
      timeout         = "300s"
      containers {
        image   = var.images["collector"]
        command = ["python", "-m", "cashmatch.entrypoints.close_month"]
        dynamic "env" {
          for_each = {
            CASHMATCH_STACK     = "gcp"
            CASHMATCH_PROJECT   = var.project
            CASHMATCH_REGION    = var.region
            CASHMATCH_BUCKET    = google_storage_bucket.data.name
            CASHMATCH_WAREHOUSE = "${var.project}.${google_bigquery_dataset.warehouse.dataset_id}"
          }
          content {
            name  = env.key
            value = env.value
          }
        }
      }
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_cloud_run_v2_job_iam_member" "scheduler_runs_closer" {
  count    = var.enable_month_closed_schedule ? 1 : 0
  name     = google_cloud_run_v2_job.close_month[0].name
  location = var.region
  role     = "roles/run.invoker"
  member   = google_service_account.closer[0].member
}

resource "google_cloud_scheduler_job" "month_closed" {
  count       = var.enable_month_closed_schedule ? 1 : 0
  name        = "cashmatch-month-closed"
  description = "Publish month.closed for the previous month"
  region      = var.region
  schedule    = var.month_closed_schedule
  time_zone   = var.schedule_time_zone

  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/${google_cloud_run_v2_job.close_month[0].id}:run"
    oauth_token {
      service_account_email = google_service_account.closer[0].email
    }
  }

  depends_on = [google_cloud_run_v2_job_iam_member.scheduler_runs_closer]
}
