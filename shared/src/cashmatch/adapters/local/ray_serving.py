"""Serving on this machine: a detached local Ray head with Ray Serve on 127.0.0.1.

The deployer may run in a short-lived CLI process, so the cluster must outlive it: the head is
started once with `ray start --head` (its address and ports recorded in
`<workspace>/serving/ray.json`), and every roll-out connects to it, applies the matcher's
Serve config with the new version in `user_config`, and waits until `GET /v1/model` answers
with that version. Only `user_config` changes between roll-outs, which Ray Serve applies in
place (`reconfigure()` on the running replicas); no replica is replaced.

Everything binds loopback only. Ray resolves "127.0.0.1" to the machine's external address
unless `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` (then the node IP is the loopback one), so the
head, its workers and this process all run with it. Ray's session directory holds unix
sockets whose paths must stay under ~107 bytes, so it lives in a short /tmp folder named
after the workspace, not in the workspace itself.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from cashmatch.adapters.local.ray_head import LOOPBACK, HeadState, _connect, ensure_head
from cashmatch.adapters.matcher_app import (
    APP_NAME,
    DEPLOYMENT_NAME,
    ArtifactRefused,
    RolloutFailed,
    set_version,
    threshold_source,
)
from cashmatch.domain.model_records import ModelRecord, ThresholdOverride
from cashmatch.service_layer.registry import ModelRegistry
from cashmatch.settings import Settings

log = logging.getLogger(__name__)

# The matcher's Serve config (`serve run` format), shipped with this adapter.
_CONFIG_TEMPLATE = Path(__file__).with_name("matcher_serve.yaml")


class LocalRayServing:
    """The `Serving` port on a local, detached Ray Serve: `roll_out(record) -> endpoint URL`."""

    def __init__(
        self,
        settings: Settings,
        *,
        timeout_s: float = 180.0,
        app_overrides: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.workspace = settings.workspace.expanduser().resolve()
        self.port = settings.serve_port
        self.timeout_s = timeout_s
        # Extra MatcherArgs (limits, batching, autoscaling) merged over matcher_serve.yaml's args.
        self.app_overrides = app_overrides or {}

    @property
    def endpoint(self) -> str:
        """Base URL of the matcher's HTTP API."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def blob_root(self) -> Path:
        """The workspace's blob store, where the replicas read the registry."""
        return self.workspace / "blobs"

    def roll_out(self, record: ModelRecord, override: ThresholdOverride | None = None) -> str:
        """Verify the artifact here, then update the app in place and wait for the version
        (at the override's threshold, if any)."""
        _preflight(self.registry(), record)
        self.start()
        previous = self.serving_version()
        fallback = previous if previous != record.version else self._running_fallback()
        self.apply(record.version, fallback_version=fallback, override=override)
        self.wait_for_version(record.version, source=threshold_source(override))
        return self.endpoint

    def registry(self) -> ModelRegistry:
        """The workspace's model registry."""
        from cashmatch.adapters.local.blobstore import DirectoryBlobStore

        return ModelRegistry(DirectoryBlobStore(self.blob_root))

    # the cluster -----------------------------------------------------------------
    def start(self) -> HeadState:
        """Start (or reuse) the workspace's Ray head, connect, and start Serve on loopback."""
        head = ensure_head(self.workspace, self.port)
        if head.serve_port != self.port:
            # Serve keeps the port it started with; answering on another would be a lie.
            raise RuntimeError(
                f"local serving already runs on port {head.serve_port}; stop it "
                f"(cashmatch serve-stop) before changing CASHMATCH_SERVE_PORT to {self.port}"
            )
        _connect(head, self.workspace)
        from ray import serve

        serve.start(
            detached=True,
            proxy_location="HeadOnly",
            http_options={"host": LOOPBACK, "port": self.port},
        )
        return head

    def apply(
        self,
        version: str | None,
        *,
        fallback_version: str | None = None,
        override: ThresholdOverride | None = None,
    ) -> None:
        """Apply the matcher's Serve config with `version` in user_config (in place if running).

        A running app keeps its own config and only its user_config changes: a process with
        other overrides (say the CLI after a benchmark) must not rebuild it by accident.
        """
        from ray.serve.schema import ServeDeploySchema

        config = self._running_config()
        if config is None or self.app_overrides:
            config = serve_config(
                blob_root=self.blob_root, port=self.port, overrides=self.app_overrides
            )
        set_version(config, version, fallback_version, override)
        _serve_client().deploy_apps(ServeDeploySchema.model_validate(config), _blocking=False)

    def _running_fallback(self) -> str | None:
        """The fallback of the running config: a second roll-out of the same version (a
        threshold change) keeps it instead of naming the version its own fallback."""
        config = self._running_config()
        if config is None:
            return None
        for deployment in config["applications"][0].get("deployments") or []:
            if deployment.get("name") == DEPLOYMENT_NAME:
                return (deployment.get("user_config") or {}).get("fallback_version")
        return None

    def _running_config(self) -> dict[str, Any] | None:
        details = _serve_client().get_serve_details()
        app = details.get("applications", {}).get(APP_NAME) or {}
        deployed = app.get("deployed_app_config")
        if not deployed:
            return None
        http = {
            k: v for k, v in (details.get("http_options") or {}).items() if k in ("host", "port")
        }
        return {"proxy_location": "HeadOnly", "http_options": http, "applications": [deployed]}

    def model_info(self) -> dict[str, Any] | None:
        """GET /v1/model from the running app, or None when nothing answers."""
        try:
            with urllib.request.urlopen(f"{self.endpoint}/v1/model", timeout=5) as response:  # noqa: S310 (loopback URL built here) # nosec B310
                return json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def serving_version(self) -> str | None:
        """The version the running app answers with, if any."""
        info = self.model_info()
        return info.get("version") if info else None

    def wait_for_version(
        self, version: str, *, confirmations: int = 5, source: str = "model"
    ) -> None:
        """Block until `confirmations` answers in a row come from `version`; raise if refused."""
        deadline = time.monotonic() + self.timeout_s
        in_a_row = 0
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            last = self.model_info()
            refused = (last or {}).get("refused") or {}
            if refused.get("version") == version and (last or {}).get("version") != version:
                raise ArtifactRefused(f"the replicas refused {version}: {refused.get('reason')}")
            failure = _app_failure()
            if failure:
                raise RolloutFailed(f"the matcher app failed to deploy: {failure}")
            answered = (
                last is not None
                and last.get("version") == version
                and last.get("threshold_source", "model") == source
            )
            in_a_row = in_a_row + 1 if answered else 0
            if in_a_row >= confirmations:
                return
            time.sleep(0.2)
        raise RolloutFailed(
            f"{version} was not serving after {self.timeout_s:.0f}s (last answer: {last})"
        )

    def wait_until_answering(self) -> None:
        """Block until the app answers /v1/health at all (200 with a model, 503 without)."""
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.endpoint}/v1/health", timeout=5):  # noqa: S310 (loopback URL built here) # nosec B310
                    return
            except urllib.error.HTTPError as exc:
                if exc.code == 503:
                    return
            except (urllib.error.URLError, OSError):
                pass
            failure = _app_failure()
            if failure:
                raise RolloutFailed(f"the matcher app failed to deploy: {failure}")
            time.sleep(0.2)
        raise RolloutFailed(f"the matcher did not answer within {self.timeout_s:.0f}s")

    def replica_ids(self) -> list[str]:
        """Ids of the matcher's running replicas (a swap in place keeps them)."""
        details = _serve_client().get_serve_details()
        app = details.get("applications", {}).get(APP_NAME, {})
        replicas = app.get("deployments", {}).get(DEPLOYMENT_NAME, {}).get("replicas", [])
        return sorted(r["replica_id"] for r in replicas if r.get("state") == "RUNNING")

    def replica_pids(self) -> dict[str, int]:
        """Worker process id of each running matcher replica (to kill one in a fault test)."""
        details = _serve_client().get_serve_details()
        app = details.get("applications", {}).get(APP_NAME, {})
        replicas = app.get("deployments", {}).get(DEPLOYMENT_NAME, {}).get("replicas", [])
        return {
            r["replica_id"]: int(r["pid"])
            for r in replicas
            if r.get("state") == "RUNNING" and r.get("pid")
        }


# config ------------------------------------------------------------------------------
def serve_config(
    *, blob_root: Path, port: int, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """matcher_serve.yaml (beside this module) with this workspace's store and port."""
    config: dict[str, Any] = yaml.safe_load(_CONFIG_TEMPLATE.read_text())
    config["http_options"] = {**config.get("http_options", {}), "host": LOOPBACK, "port": port}
    (app,) = (a for a in config["applications"] if a["name"] == APP_NAME)
    app["args"] = {**app.get("args", {}), **(overrides or {})}
    app["args"].update(store="local", blob_root=str(blob_root))
    if overrides and "autoscaling" in overrides:
        # A deployment's options in the config win over the builder's: override them there too.
        for deployment in app.get("deployments", []):
            if "autoscaling_config" in deployment:
                deployment["autoscaling_config"] = {
                    **deployment["autoscaling_config"],
                    **overrides["autoscaling"],
                }
    return config


def _serve_client() -> Any:
    """The connected Serve controller client; the declarative (config) API lives only there.

    `serve.run` would give every call a new code version and replace the replicas; applying a
    config whose `user_config` alone changed is what Serve updates in place.
    """
    from ray.serve.context import _get_global_client

    client = _get_global_client()
    if client is None:
        raise RuntimeError("Serve is not started; call LocalRayServing.start() first")
    return client


def _app_failure() -> str | None:
    from ray import serve

    app = serve.status().applications.get(APP_NAME)
    if app is not None and str(app.status) in ("DEPLOY_FAILED", "ApplicationStatus.DEPLOY_FAILED"):
        return app.message or "DEPLOY_FAILED"
    return None


def _preflight(registry: ModelRegistry, record: ModelRecord) -> None:
    """Refuse a bad artifact before any replica sees it (the replicas check again)."""
    from cashmatch.service_layer.matcher import MatcherService

    try:
        MatcherService(registry).load(record.version)
    except Exception as exc:
        raise ArtifactRefused(f"refusing to roll {record.version} out: {exc}") from exc
