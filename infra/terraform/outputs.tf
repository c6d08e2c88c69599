output "bucket" {
  description = "CASHMATCH_BUCKET"
  value       = google_storage_bucket.data.name
}

output "warehouse" {
  description = "CASHMATCH_WAREHOUSE"
  value       = "${var.project}.${google_bigquery_dataset.warehouse.dataset_id}"
}

output "image_repository" {
  description = "Prefix of the images: <this>/<service>:<tag>"
  value       = local.image_repository
}

output "service_urls" {
  description = "Cloud Run URL per service (internal ingress: reachable from Pub/Sub and the VPC)"
  value       = { for name, svc in google_cloud_run_v2_service.service : name => svc.uri }
}

output "service_accounts" {
  description = "Service account email per service"
  value       = { for name, sa in google_service_account.service : name => sa.email }
}

output "push_service_account" {
  description = "CASHMATCH_PUSH_SERVICE_ACCOUNT"
  value       = google_service_account.push.email
}

output "topics" {
  value = concat([for t in google_pubsub_topic.events : t.name], [google_pubsub_topic.dead_letter.name])
}

output "build_service_account" {
  description = "Pass as service_account to the Cloud Build request (shared/src/cashmatch/adapters/gcp/cloud_build.py)"
  value       = google_service_account.build.email
}

output "matcher_service_account" {
  description = "Annotate the Kubernetes account cashmatch-matcher with iam.gke.io/gcp-service-account=<this>"
  value       = var.enable_gke ? google_service_account.matcher[0].email : null
}

output "cluster_name" {
  value = var.enable_gke ? google_container_cluster.matcher[0].name : null
}

output "train_job_service_account" {
  description = "CASHMATCH_VERTEX_SERVICE_ACCOUNT: what Vertex AI training jobs run as"
  value       = var.enable_vertex_training ? google_service_account.train_job[0].email : null
}

output "console_url" {
  description = "The web console (behind IAP), when enable_console."
  value       = var.enable_console ? google_cloud_run_v2_service.console[0].uri : null
}
