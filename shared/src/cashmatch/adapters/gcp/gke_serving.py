"""Serving on GKE: the matcher's KubeRay RayService, updated in place through its user_config.

A roll-out of a version is three steps, all over the cluster's REST API with the process's
Google identity (no kubectl, no kubeconfig):

1. when the serving code differs from what the RayService runs (its `cashmatch.io/serving-code`
   annotation), or `CASHMATCH_SERVING_BUILD=always`, build the matcher image with Cloud Build
   (`CloudBuildImages`) and wait for it;
2. one JSON merge patch of the RayService: `spec.serveConfigV2` with the matcher's
   `user_config.model_version` set to the new version and `fallback_version` to the one it
   replaces (KubeRay applies it to the running cluster; Ray Serve calls `reconfigure()` in
   place), plus the new image in `rayClusterConfig` when one was built (KubeRay then brings up
   a new cluster and switches traffic once it is ready). The patch carries the object's
   `resourceVersion`, so a concurrent change makes it fail with 409 and it is redone on the
   fresh object;
3. confirm: poll the RayService's status and the app's `GET /v1/model` (through the API
   server's service proxy) until several answers in a row report the version. A version the
   replicas refuse is a PermanentError; no answer in time is a RolloutFailed, so the deployer
   publishes nothing and the event is retried.

A rollback is the same patch with the older version.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import logging
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import httpx
import yaml

from cashmatch.adapters.gcp.cloud_build import CloudBuildImages, code_digest
from cashmatch.adapters.matcher_app import (
    APP_NAME,
    DEPLOYMENT_NAME,
    ArtifactRefused,
    RolloutFailed,
    set_version,
    threshold_source,
)
from cashmatch.domain.errors import PermanentError
from cashmatch.domain.model_records import ModelRecord, ThresholdOverride
from cashmatch.ports import BlobStore

log = logging.getLogger(__name__)

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
CODE_ANNOTATION = "cashmatch.io/serving-code"
VERSION_ANNOTATION = "cashmatch.io/model-version"
SERVE_PORT = 8000
MERGE_PATCH = "application/merge-patch+json"

__all__ = [
    "ArtifactRefused",
    "GkeRayServing",
    "GoogleAccessToken",
    "KubeApi",
    "KubeApiError",
    "RolloutFailed",
    "rollout_patch",
]


class KubeApiError(RuntimeError):
    """The Kubernetes API answered with an error status (worth retrying unless refused)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class KubeConflict(KubeApiError):
    """409: the object changed since it was read (its resourceVersion moved)."""


class KubeApiRefused(KubeApiError, PermanentError):
    """401/403/404: no access, or no such object; retrying will not change that."""


class GoogleAccessToken:
    """An OAuth access token of this process's Google identity, refreshed when it expires.

    GKE accepts it as a bearer token; what the identity may do in the cluster is its IAM roles
    (roles/container.developer for the deployer).
    """

    def __init__(self) -> None:
        self._credentials: Any = None

    def __call__(self) -> str:
        import google.auth
        from google.auth.transport.requests import Request

        if self._credentials is None:
            self._credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
        if not self._credentials.valid:
            self._credentials.refresh(Request())
        return str(self._credentials.token)


class KubeApi:
    """The few Kubernetes REST calls a roll-out needs, over HTTPS with a bearer token."""

    def __init__(
        self,
        endpoint: str,
        token: Callable[[], str],
        *,
        ca_certificate: str = "",
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        verify: ssl.SSLContext | bool = True
        if ca_certificate:
            # Terraform's cluster_ca_certificate is base64 of the PEM; a PEM is taken as it is.
            pem = ca_certificate
            if "BEGIN CERTIFICATE" not in pem:
                pem = base64.b64decode(ca_certificate).decode()
            verify = ssl.create_default_context(cadata=pem)
        self.endpoint = endpoint.rstrip("/")
        self._token = token
        self._client = httpx.Client(
            base_url=self.endpoint, verify=verify, timeout=timeout_s, transport=transport
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def request(
        self, method: str, path: str, *, body: Any = None, content_type: str | None = None
    ) -> dict[str, Any]:
        """One call; the JSON answer, or KubeApiError naming the status and the API's message."""
        headers = {"Authorization": f"Bearer {self._token()}", "Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        response = self._client.request(method, path, json=body, headers=headers)
        if response.status_code >= 400:
            message = _status_message(response)
            text = f"{method} {path}: {response.status_code} {message}"
            if response.status_code == 409:
                raise KubeConflict(409, text)
            if response.status_code in (401, 403, 404):
                raise KubeApiRefused(response.status_code, text)
            raise KubeApiError(response.status_code, text)
        result: dict[str, Any] = response.json()
        return result

    def get(self, path: str) -> dict[str, Any]:
        """GET an object."""
        return self.request("GET", path)

    def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        """PATCH with a JSON merge patch (RFC 7386); the object as it is after."""
        return self.request("PATCH", path, body=patch, content_type=MERGE_PATCH)


def _status_message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message") or response.text[:300])
    except ValueError:
        return response.text[:300]


def serve_config(service: dict[str, Any]) -> dict[str, Any]:
    """The RayService's serveConfigV2, parsed (it is a YAML string in the spec)."""
    text = (service.get("spec") or {}).get("serveConfigV2")
    if not text:
        raise PermanentError("the RayService has no spec.serveConfigV2 (see infra/k8s)")
    config: dict[str, Any] = yaml.safe_load(text)
    return config


def user_config(config: dict[str, Any]) -> dict[str, Any]:
    """The matcher deployment's user_config in a Serve config ({} when there is none)."""
    for app in config.get("applications") or []:
        if app.get("name") == APP_NAME:
            for deployment in app.get("deployments") or []:
                if deployment.get("name") == DEPLOYMENT_NAME:
                    return dict(deployment.get("user_config") or {})
            return {}
    raise PermanentError(f"serveConfigV2 has no application named {APP_NAME!r}")


def rollout_patch(
    service: dict[str, Any],
    version: str,
    *,
    image: str | None = None,
    code: str | None = None,
    override: ThresholdOverride | None = None,
) -> dict[str, Any]:
    """The merge patch that serves `version` (and, with `image`, runs that image).

    The fallback becomes the version being replaced; patching the version already served
    keeps its fallback, so a redelivered roll-out changes nothing.
    """
    config = serve_config(service)
    current = user_config(config)
    previous = current.get("model_version")
    fallback = previous if previous != version else current.get("fallback_version")
    set_version(config, version, fallback, override)
    metadata: dict[str, Any] = {
        "resourceVersion": service["metadata"]["resourceVersion"],
        "annotations": {VERSION_ANNOTATION: version},
    }
    spec: dict[str, Any] = {"serveConfigV2": yaml.safe_dump(config, sort_keys=False)}
    if image is not None:
        spec["rayClusterConfig"] = _with_image(service["spec"]["rayClusterConfig"], image)
        if code is not None:
            metadata["annotations"][CODE_ANNOTATION] = code
    return {"metadata": metadata, "spec": spec}


def _with_image(cluster: dict[str, Any], image: str) -> dict[str, Any]:
    """Head and worker groups with `image` in their Ray container (KubeRay: the first one).

    Lists are replaced whole by a merge patch, so every group is sent complete.
    """
    head = copy.deepcopy(cluster["headGroupSpec"])
    head["template"]["spec"]["containers"][0]["image"] = image
    workers = copy.deepcopy(cluster.get("workerGroupSpecs") or [])
    for group in workers:
        group["template"]["spec"]["containers"][0]["image"] = image
    return {"headGroupSpec": head, "workerGroupSpecs": workers}


def _app_failure(status: dict[str, Any]) -> str | None:
    for side in ("activeServiceStatus", "pendingServiceStatus"):
        apps = (status.get(side) or {}).get("applicationStatuses") or {}
        app = apps.get(APP_NAME) or {}
        if app.get("status") == "DEPLOY_FAILED":
            return f"{side}: DEPLOY_FAILED: {app.get('message') or 'no message'}"
    return None


class GkeRayServing:
    """The `Serving` port on GKE: build if needed, patch the RayService, wait for the version."""

    def __init__(
        self,
        api: KubeApi,
        blobs: BlobStore,
        *,
        namespace: str = "default",
        name: str = "cashmatch-matcher",
        images: CloudBuildImages | None = None,
        build: Literal["auto", "always", "never"] = "auto",
        code_root: Path | None = None,
        timeout_s: float = 420.0,
        poll_s: float = 2.0,
        confirmations: int = 3,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if build != "never" and (images is None or code_root is None):
            raise ValueError("building images needs a CloudBuildImages and the code root")
        self.api = api
        self.blobs = blobs
        self.namespace = namespace
        self.name = name
        self.images = images
        self.build = build
        self.code_root = code_root
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.confirmations = confirmations
        self.sleep = sleep

    @property
    def path(self) -> str:
        """The RayService's REST path."""
        return f"/apis/ray.io/v1/namespaces/{self.namespace}/rayservices/{self.name}"

    @property
    def endpoint(self) -> str:
        """Where clients in the cluster reach the matcher (KubeRay's serve service)."""
        return f"http://{self.name}-serve-svc.{self.namespace}.svc.cluster.local:{SERVE_PORT}"

    @property
    def model_path(self) -> str:
        """`GET /v1/model` of the app, through the API server's proxy to the serve service."""
        return (
            f"/api/v1/namespaces/{self.namespace}/services/"
            f"{self.name}-serve-svc:{SERVE_PORT}/proxy/v1/model"
        )

    def roll_out(self, record: ModelRecord, override: ThresholdOverride | None = None) -> str:
        """Serve `record.version` (at the override's threshold, if any) on the RayService;
        return the endpoint once it answers so."""
        self._check_artifact(record)
        service = self.api.get(self.path)
        image, code = self._image(service, record)
        for _ in range(5):
            patch = rollout_patch(
                service, record.version, image=image, code=code, override=override
            )
            try:
                patched = self.api.merge_patch(self.path, patch)
                break
            except KubeConflict:
                log.info("the RayService changed while it was patched; patching it again")
                service = self.api.get(self.path)
        else:
            raise RolloutFailed("the RayService kept changing; gave up after 5 patches")
        generation = int(patched.get("metadata", {}).get("generation") or 0)
        log.info("patched %s to %s (generation %s)", self.name, record.version, generation)
        self.wait_for_version(record.version, generation, source=threshold_source(override))
        return self.endpoint

    def _check_artifact(self, record: ModelRecord) -> None:
        """Refuse a tampered or missing artifact before the cluster sees the version."""
        try:
            data = self.blobs.get(self.blobs.key_from_uri(record.model_uri)).data
        except (KeyError, ValueError) as exc:
            raise ArtifactRefused(f"refusing to roll {record.version} out: {exc}") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != record.artifact_digest:
            raise ArtifactRefused(
                f"refusing to roll {record.version} out: artifact sha256 {actual[:12]}… is not "
                f"the registered {record.artifact_digest[:12]}…"
            )

    def _image(self, service: dict[str, Any], record: ModelRecord) -> tuple[str | None, str | None]:
        """Build the image when the code changed (or always); (image, code digest) or Nones."""
        if self.build == "never":
            return None, None
        assert self.images is not None and self.code_root is not None
        code = code_digest(self.code_root)
        running = ((service.get("metadata") or {}).get("annotations") or {}).get(CODE_ANNOTATION)
        if self.build == "auto" and running == code:
            return None, None
        log.info("serving code %s (running: %s): building the image", code[:12], running)
        return self.images.build(record, code), code

    def model_info(self) -> dict[str, Any] | None:
        """The app's `GET /v1/model`, or None while it does not answer."""
        try:
            return self.api.get(self.model_path)
        except (KubeApiError, httpx.HTTPError, ValueError):
            return None

    def wait_for_version(self, version: str, generation: int = 0, source: str = "model") -> None:
        """Until `confirmations` answers in a row report `version` and KubeRay has seen the
        patch; ArtifactRefused if the replicas refuse it, RolloutFailed on failure or timeout."""
        deadline = time.monotonic() + self.timeout_s
        in_a_row = 0
        info: dict[str, Any] | None = None
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.api.get(self.path).get("status") or {}
            failure = _app_failure(status)
            if failure:
                raise RolloutFailed(f"the RayService failed to deploy {version}: {failure}")
            observed = int(status.get("observedGeneration") or generation)
            info = self.model_info()
            refused = (info or {}).get("refused") or {}
            if refused.get("version") == version and (info or {}).get("version") != version:
                raise ArtifactRefused(f"the replicas refused {version}: {refused.get('reason')}")
            answered = (
                info is not None
                and info.get("version") == version
                and info.get("threshold_source", "model") == source
            )
            in_a_row = in_a_row + 1 if answered and observed >= generation else 0
            if in_a_row >= self.confirmations:
                return
            self.sleep(self.poll_s)
        raise RolloutFailed(
            f"{self.namespace}/{self.name} did not report {version} within "
            f"{self.timeout_s:.0f}s (last /v1/model: {_brief(info)}; last status: "
            f"{_brief(status)}); model.deployed is not published, the event will be retried"
        )


def _brief(value: Any, limit: int = 300) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "…"
