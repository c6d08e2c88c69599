# The Ray Serve matcher runs on GKE as a KubeRay RayService (infra/k8s/rayservice.yaml).
# Autopilot: no node pools to size; Ray's pods request what they need and GKE provisions it.
# Terraform installs only the operator; the RayService itself is applied (and its user_config
# changed on every roll-out) by the deployer, so Terraform never fights it over that field.

# Autopilot fixes these itself, so checkov's checks of the Standard-cluster fields do not apply:
resource "google_container_cluster" "matcher" {
  # checkov:skip=CKV_GCP_12:Autopilot enforces network policy (Dataplane V2)
  # checkov:skip=CKV_GCP_13:client certificates are off by default and not configurable on Autopilot
  # checkov:skip=CKV_GCP_23:Autopilot clusters are always VPC-native (alias IPs)
  # checkov:skip=CKV_GCP_61:intranode visibility is managed by Autopilot
  # checkov:skip=CKV_GCP_69:Autopilot always runs the GKE metadata server (Workload Identity)
  # checkov:skip=CKV_GCP_65:Google Groups for RBAC needs a Workspace domain; IAM roles are used
  count            = var.enable_gke ? 1 : 0
  name             = "cashmatch"
  location         = var.region
  enable_autopilot = true
  # Keeps a mistaken destroy from taking the serving path down.
  deletion_protection = var.deletion_protection

  release_channel {
    channel = "REGULAR"
  }

  # Workload Identity (always on with Autopilot) lets the matcher's pods read models from the
  # bucket as a Google service account, without keys.
  workload_identity_config {
    workload_pool = "${var.project}.svc.id.goog"
  }

  resource_labels = { app = "cashmatch" }

  # Only admitted images run (the matcher image comes from our Artifact Registry).
  binary_authorization {
    evaluation_mode = "PROJECT_SINGLETON_POLICY_ENFORCE"
  }

  # The control plane answers only the networks that deploy (CI, the deployer's egress).
  master_authorized_networks_config {
    dynamic "cidr_blocks" {
      for_each = var.gke_authorized_networks
      content {
        cidr_block   = cidr_blocks.value
        display_name = "authorized"
      }
    }
  }

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = false
  }

  depends_on = [google_project_service.apis]
}

resource "helm_release" "kuberay_operator" {
  count            = var.enable_gke ? 1 : 0
  name             = "kuberay-operator"
  repository       = "https://ray-project.github.io/kuberay-helm/"
  chart            = "kuberay-operator"
  version          = var.kuberay_operator_version
  namespace        = "kuberay-system"
  create_namespace = true
  atomic           = true
}

# The pods of the RayService run as the Kubernetes account cashmatch-matcher, bound to this
# Google account, which may only read objects (models) in the bucket.
resource "google_service_account" "matcher" {
  count        = var.enable_gke ? 1 : 0
  account_id   = "cashmatch-matcher"
  display_name = "cashmatch Ray Serve matcher (GKE Workload Identity)"
}

resource "google_storage_bucket_iam_member" "matcher_reads_models" {
  count  = var.enable_gke ? 1 : 0
  bucket = google_storage_bucket.data.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.matcher[0].member
}

resource "google_service_account_iam_member" "matcher_workload_identity" {
  count              = var.enable_gke ? 1 : 0
  service_account_id = google_service_account.matcher[0].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project}.svc.id.goog[${var.matcher_namespace}/cashmatch-matcher]"

  # The identity pool exists once the cluster does.
  depends_on = [google_container_cluster.matcher]
}
