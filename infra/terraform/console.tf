# The web console (services/console, `cashmatch ui` on a laptop) as one more Cloud Run service,
# behind Identity-Aware Proxy: IAP signs people in, only var.console_members get through, and
# IAP's service agent is the only principal that may invoke the service, so the proxy's
# X-Goog-Authenticated-User-Email header (who acted, in the registry and the audit log) cannot
# be forged by a caller who skips the proxy. Off unless enable_console (needs images["console"]
# and an organization: IAP on Cloud Run requires one).
#
# Its identity reads the bucket (registry, datasets, reports, the bus journal), writes only what
# its buttons write (approvals, the audit log, the bus journal's delivery records), reads the
# dead-letter subscription, and publishes only on the topics its buttons publish to: a redrive
# or republish goes back to the event's own topic (a subscribed one), an approval republishes
# evaluation.passed. Never the dead-letter topic, never BigQuery.

locals {
  console_topics = toset(distinct([for sub in values(local.subscriptions) : sub.topic]))
  console_bucket = "projects/_/buckets/${google_storage_bucket.data.name}/objects"
  # the prefixes the console writes (shared/src/cashmatch/service_layer/operations.py, registry.py,
  # adapters/gcp/bus/journal.py)
  console_writes = ["bus/", "registry/approvals/", "audit/"]
}

resource "google_service_account" "console" {
  count        = var.enable_console ? 1 : 0
  account_id   = "cashmatch-console"
  display_name = "cashmatch console (Cloud Run, behind IAP)"
}

resource "google_storage_bucket_iam_member" "console_reads" {
  count  = var.enable_console ? 1 : 0
  bucket = google_storage_bucket.data.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.console[0].member
}

resource "google_storage_bucket_iam_member" "console_writes" {
  count  = var.enable_console ? 1 : 0
  bucket = google_storage_bucket.data.name
  role   = "roles/storage.objectUser"
  member = google_service_account.console[0].member

  condition {
    title       = "console-writes"
    description = "approvals, the audit log and the bus journal only"
    expression  = join(" || ", [for prefix in local.console_writes : "resource.name.startsWith(\"${local.console_bucket}/${prefix}\")"])
  }
}

resource "google_pubsub_topic_iam_member" "console_publishes" {
  for_each = var.enable_console ? local.console_topics : toset([])
  topic    = google_pubsub_topic.events[each.value].id
  role     = "roles/pubsub.publisher"
  member   = google_service_account.console[0].member
}

resource "google_pubsub_subscription_iam_member" "console_reads_dead_letters" {
  count        = var.enable_console ? 1 : 0
  subscription = google_pubsub_subscription.dead_letter_inbox.name
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.console[0].member
}

resource "google_cloud_run_v2_service" "console" {
  count    = var.enable_console ? 1 : 0
  name     = "cashmatch-console"
  location = var.region
  # People reach it at its run.app URL; IAP stands in front of every ingress path.
  ingress             = "INGRESS_TRAFFIC_ALL"
  iap_enabled         = true
  deletion_protection = var.deletion_protection

  template {
    service_account                  = google_service_account.console[0].email
    timeout                          = "60s"
    max_instance_request_concurrency = 20

    # One instance: the CSRF key is made when the instance starts (a form served before a
    # restart is refused once, and reloading it fixes that); a console needs no more.
    scaling {
      min_instance_count = 0
      max_instance_count = 1
    }

    containers {
      image = var.images["console"]

      resources {
        limits = {
          cpu    = "1"
          memory = "1Gi"
        }
        cpu_idle = true
      }

      dynamic "env" {
        for_each = merge(local.common_env, {
          CASHMATCH_CONSOLE_AUTH         = "iap"
          CASHMATCH_CONSOLE_ALLOW_REMOTE = "true"
        })
        content {
          name  = env.key
          value = env.value
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = contains(keys(var.images), "console")
      error_message = "enable_console needs images[\"console\"] (services/console/Dockerfile)."
    }
    precondition {
      condition     = length(var.console_members) > 0
      error_message = "enable_console needs console_members (who may open it through IAP)."
    }
  }

  depends_on = [
    google_project_service.apis,
  ]
}

# Only IAP's service agent invokes the service: a request that did not pass the proxy is
# refused by Cloud Run's IAM check before it reaches the app.
resource "google_cloud_run_v2_service_iam_member" "iap_invokes_console" {
  count    = var.enable_console ? 1 : 0
  name     = google_cloud_run_v2_service.console[0].name
  location = var.region
  role     = "roles/run.invoker"
  member   = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-iap.iam.gserviceaccount.com"
}

# Who may get through IAP to the console.
resource "google_iap_web_cloud_run_service_iam_member" "console_members" {
  for_each               = var.enable_console ? toset(var.console_members) : toset([])
  project                = var.project
  location               = var.region
  cloud_run_service_name = google_cloud_run_v2_service.console[0].name
  role                   = "roles/iap.httpsResourceAccessor"
  member                 = each.value
}
