terraform {
  required_version = ">= 1.6"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
    # Only for the KubeRay operator on the GKE cluster (see gke.tf).
    helm = {
      source  = "hashicorp/helm"
      version = "~> 2.17"
    }
  }
}

provider "google" {
  project = var.project
  region  = var.region
}

data "google_client_config" "current" {}

# The cluster is created in the same apply, so the Helm provider is configured from its
# attributes; when enable_gke is false no Helm release is planned and this is never dialled.
provider "helm" {
  kubernetes {
    host                   = var.enable_gke ? "https://${google_container_cluster.matcher[0].endpoint}" : null
    token                  = data.google_client_config.current.access_token
    cluster_ca_certificate = var.enable_gke ? base64decode(google_container_cluster.matcher[0].master_auth[0].cluster_ca_certificate) : null
  }
}
