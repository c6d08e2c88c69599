"""Local stand-ins for the REST APIs the GKE / Cloud Build / Vertex AI adapters call.

Each is an HTTP server on 127.0.0.1 that records every request (method, path, query, headers,
JSON body) and answers as the real API would for the few calls the adapters make. The real
clients talk to them: google-cloud-build and google-cloud-aiplatform through their REST
transport with `api_endpoint=http://127.0.0.1:PORT`, the GKE adapter through httpx. Request
bodies are parsed with the API's own message types by the tests, so a misspelt field fails.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

REPO = Path(__file__).resolve().parents[3]

Answer = tuple[int, Any]
Route = Callable[["Recorded", re.Match[str]], Answer]


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Recorder:
    """An HTTP server on 127.0.0.1 with regex routes; every request is kept in `requests`."""

    routes: list[tuple[str, re.Pattern[str], Route]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    scheme: str = "http"
    _server: ThreadingHTTPServer | None = None

    def route(self, method: str, pattern: str) -> Callable[[Route], Route]:
        """Register a handler for METHOD and a full-match path regex."""

        def add(handler: Route) -> Route:
            self.routes.append((method, re.compile(pattern), handler))
            return handler

        return add

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    def calls(self, method: str, pattern: str) -> list[Recorded]:
        """The recorded requests of one method whose path matches `pattern` entirely."""
        regex = re.compile(pattern)
        return [r for r in self.requests if r.method == method and regex.fullmatch(r.path)]

    def start(self, tls: ssl.SSLContext | None = None) -> Recorder:
        """Serve in a thread; with `tls`, over HTTPS (the URL then starts with https)."""
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                path = unquote(parts.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                request = Recorded(
                    self.command,
                    path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                recorder.requests.append(request)
                status, answer = 404, _error(404, f"no route for {self.command} {path}")
                for method, pattern, handler in recorder.routes:
                    match = pattern.fullmatch(path)
                    if method == self.command and match:
                        status, answer = handler(request, match)
                        break
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _error(code: int, message: str) -> dict[str, Any]:
    """Google's JSON error body (google-api-core maps it to NotFound, Conflict, ...)."""
    names = {404: "NOT_FOUND", 409: "ALREADY_EXISTS", 400: "INVALID_ARGUMENT", 500: "INTERNAL"}
    return {"error": {"code": code, "message": message, "status": names.get(code, "UNKNOWN")}}


def _label_filter(query: dict[str, list[str]]) -> dict[str, str]:
    text = (query.get("filter") or [""])[0]
    return dict(re.findall(r'labels\.([\w-]+)="([^"]*)"', text))


# --- Kubernetes: one KubeRay RayService ------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class FakeKube:
    """The API server with KubeRay and the matcher behind it, for one RayService.

    The object starts as infra/k8s/rayservice.yaml. A PATCH must be a merge patch; a stale
    resourceVersion gets 409. The "cluster" then serves the patched user_config's version on
    `/v1/model` after `answers_before_switch` answers (unless `stuck` or `refuse`).
    """

    def __init__(self, namespace: str = "default") -> None:
        manifest = yaml.safe_load(
            (REPO / "infra/k8s/rayservice.yaml").read_text().split("\n---")[0]
        )
        self.name = manifest["metadata"]["name"]
        self.namespace = namespace
        manifest["metadata"].update(namespace=namespace, resourceVersion="100", generation=1)
        self.object: dict[str, Any] = manifest
        self.serving = self.user_config()["model_version"]
        self.stuck = False
        self.refuse: str | None = None
        self.answers_before_switch = 2
        self.conflicts_to_inject = 0
        self._answers = 0
        self.recorder = Recorder()
        base = f"/apis/ray.io/v1/namespaces/{namespace}/rayservices/{self.name}"
        proxy = f"/api/v1/namespaces/{namespace}/services/{self.name}-serve-svc:8000/proxy/v1/model"
        self.recorder.route("GET", re.escape(base))(self._get)
        self.recorder.route("PATCH", re.escape(base))(self._patch)
        self.recorder.route("GET", re.escape(proxy))(self._model)

    def user_config(self) -> dict[str, Any]:
        config = yaml.safe_load(self.object["spec"]["serveConfigV2"])
        (app,) = config["applications"]
        (deployment,) = app["deployments"]
        return dict(deployment["user_config"])

    def _with_status(self) -> dict[str, Any]:
        body = copy.deepcopy(self.object)
        body["status"] = {
            "observedGeneration": self.object["metadata"]["generation"],
            "serviceStatus": "Running",
            "activeServiceStatus": {
                "applicationStatuses": {"matcher": {"status": "RUNNING", "message": ""}}
            },
        }
        return body

    def _get(self, request: Recorded, match: re.Match[str]) -> Answer:
        return 200, self._with_status()

    def _patch(self, request: Recorded, match: re.Match[str]) -> Answer:
        if request.headers.get("content-type") != "application/merge-patch+json":
            return 415, {"kind": "Status", "message": "merge patch expected", "code": 415}
        wanted = (request.body.get("metadata") or {}).get("resourceVersion")
        if self.conflicts_to_inject:
            self.conflicts_to_inject -= 1
            # Someone else changed the object meanwhile.
            self.object["metadata"]["resourceVersion"] = str(
                int(self.object["metadata"]["resourceVersion"]) + 1
            )
        if wanted is not None and wanted != self.object["metadata"]["resourceVersion"]:
            return 409, {"kind": "Status", "message": "the object has been modified", "code": 409}
        before = copy.deepcopy(self.object["spec"])
        self.object = merge_patch(self.object, request.body)
        meta = self.object["metadata"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        if self.object["spec"] != before:
            meta["generation"] += 1
        self._answers = 0
        return 200, self._with_status()

    def _model(self, request: Recorded, match: re.Match[str]) -> Answer:
        target = self.user_config()["model_version"]
        self._answers += 1
        if not self.stuck and not self.refuse and self._answers > self.answers_before_switch:
            self.serving = target
        refused = {"version": target, "reason": self.refuse} if self.refuse else None
        return 200, {"version": self.serving, "refused": refused, "training_metrics": {}}

    def patches(self) -> list[Recorded]:
        return self.recorder.calls("PATCH", r"/apis/ray\.io/v1/.*")


# --- Cloud Build -----------------------------------------------------------------------------


class FakeCloudBuild:
    """projects.builds.create / list / get. Each build goes through `statuses` on each get."""

    def __init__(self, project: str = "test-project") -> None:
        self.project = project
        self.builds: dict[str, dict[str, Any]] = {}
        self.statuses = ["WORKING", "SUCCESS"]
        self._progress: dict[str, list[str]] = {}
        self._ids = itertools.count(1)
        self.recorder = Recorder()
        base = rf"/v1/projects/{re.escape(project)}/builds"
        self.recorder.route("POST", base)(self._create)
        self.recorder.route("GET", base)(self._list)
        self.recorder.route("GET", base + r"/(?P<id>[^/]+)")(self._get)

    def add_build(self, tags: list[str], status: str, statuses: list[str] | None = None) -> str:
        """A build that exists before the test's roll-out (e.g. started by an earlier try)."""
        build_id = f"b-{next(self._ids)}"
        self.builds[build_id] = {"id": build_id, "projectId": self.project, "tags": tags}
        self.builds[build_id]["status"] = status
        self._progress[build_id] = list(statuses or [])
        return build_id

    def creates(self) -> list[Recorded]:
        return self.recorder.calls("POST", r"/v1/projects/.*/builds")

    def _create(self, request: Recorded, match: re.Match[str]) -> Answer:
        build_id = f"b-{next(self._ids)}"
        build = {**request.body, "id": build_id, "projectId": self.project, "status": "QUEUED"}
        self.builds[build_id] = build
        self._progress[build_id] = list(self.statuses)
        operation = {
            "name": f"operations/build/{self.project}/{build_id}",
            "metadata": {
                "@type": "type.googleapis.com/google.devtools.cloudbuild.v1.BuildOperationMetadata",
                "build": build,
            },
        }
        return 200, operation

    def _list(self, request: Recorded, match: re.Match[str]) -> Answer:
        text = (request.query.get("filter") or [""])[0]
        wanted = set(re.findall(r'tags="([^"]+)"', text))
        found = [b for b in self.builds.values() if wanted <= set(b.get("tags", []))]
        return 200, {"builds": list(reversed(found))}

    def _get(self, request: Recorded, match: re.Match[str]) -> Answer:
        build = self.builds.get(match["id"])
        if build is None:
            return 404, _error(404, "no such build")
        if self._progress[match["id"]]:
            build["status"] = self._progress[match["id"]].pop(0)
        if build["status"] == "FAILURE":
            build["statusDetail"] = "step build exited 1"
        return 200, build


# --- Vertex AI: custom jobs ------------------------------------------------------------------


class FakeVertexJobs:
    """customJobs create / get / list; a created job runs `execute(job)` in a thread and ends
    SUCCEEDED when it returns (0, _), FAILED with the output otherwise."""

    def __init__(
        self,
        execute: Callable[[dict[str, Any]], tuple[int, str]],
        project: str = "test-project",
        region: str = "europe-west1",
    ) -> None:
        self.execute = execute
        self.parent = f"projects/{project}/locations/{region}"
        self.jobs: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1000)
        self.recorder = Recorder()
        base = "/v1/" + re.escape(self.parent) + "/customJobs"
        self.recorder.route("POST", base)(self._create)
        self.recorder.route("GET", base)(self._list)
        self.recorder.route("GET", base + r"/(?P<id>\d+)")(self._get)

    def creates(self) -> list[Recorded]:
        return self.recorder.calls("POST", r"/v1/.*/customJobs")

    def _create(self, request: Recorded, match: re.Match[str]) -> Answer:
        name = f"{self.parent}/customJobs/{next(self._ids)}"
        job = {**request.body, "name": name, "state": "JOB_STATE_PENDING"}
        self.jobs[name] = job
        threading.Thread(target=self._run, args=(job,), daemon=True).start()
        return 200, job

    def _run(self, job: dict[str, Any]) -> None:
        job["state"] = "JOB_STATE_RUNNING"
        code, output = self.execute(job)
        if code == 0:
            job["state"] = "JOB_STATE_SUCCEEDED"
        else:
            job["state"] = "JOB_STATE_FAILED"
            job["error"] = {"code": 13, "message": f"exit status {code}: {output[-500:]}"}

    def _list(self, request: Recorded, match: re.Match[str]) -> Answer:
        labels = _label_filter(request.query)
        found = [
            j
            for j in self.jobs.values()
            if all((j.get("labels") or {}).get(k) == v for k, v in labels.items())
        ]
        return 200, {"customJobs": list(reversed(found))}

    def _get(self, request: Recorded, match: re.Match[str]) -> Answer:
        name = f"{self.parent}/customJobs/{match['id']}"
        if name not in self.jobs:
            return 404, _error(404, f"{name} not found")
        return 200, self.jobs[name]


# --- Vertex AI: Model Registry ---------------------------------------------------------------


class FakeVertexModels:
    """models get (by id, @version or @alias) / listVersions / upload / mergeVersionAliases."""

    def __init__(self, project: str = "test-project", region: str = "europe-west1") -> None:
        self.location = f"projects/{project}/locations/{region}"
        self.versions: dict[str, list[dict[str, Any]]] = {}  # model id -> versions
        self.recorder = Recorder()
        base = "/v1/" + re.escape(self.location) + "/models"
        self.recorder.route("POST", base + ":upload")(self._upload)
        self.recorder.route("GET", base + r"/(?P<id>[a-z0-9-]+):listVersions")(self._list)
        self.recorder.route("GET", base + r"/(?P<id>[a-z0-9-]+)(@(?P<ref>[\w-]+))?")(self._get)
        self.recorder.route(
            "POST", base + r"/(?P<id>[a-z0-9-]+)@(?P<ref>[\w-]+):mergeVersionAliases"
        )(self._merge)

    def uploads(self) -> list[Recorded]:
        return self.recorder.calls("POST", r"/v1/.*/models:upload")

    def merges(self) -> list[Recorded]:
        return self.recorder.calls("POST", r"/v1/.*:mergeVersionAliases")

    def _find(self, model_id: str, ref: str | None) -> dict[str, Any] | None:
        versions = self.versions.get(model_id) or []
        ref = ref or "default"
        for version in versions:
            if version["versionId"] == ref or ref in version["versionAliases"]:
                return version
        return None

    def _get(self, request: Recorded, match: re.Match[str]) -> Answer:
        found = self._find(match["id"], match["ref"])
        if found is None:
            return 404, _error(404, f"model {match['id']}@{match['ref']} not found")
        return 200, found

    def _list(self, request: Recorded, match: re.Match[str]) -> Answer:
        labels = _label_filter(request.query)
        found = [
            v
            for v in self.versions.get(match["id"]) or []
            if all((v.get("labels") or {}).get(k) == val for k, val in labels.items())
        ]
        return 200, {"models": found}

    def _upload(self, request: Recorded, match: re.Match[str]) -> Answer:
        body = request.body
        if body.get("parentModel"):
            model_id = body["parentModel"].rsplit("/", 1)[1]
            if model_id not in self.versions:
                return 404, _error(404, "parent model not found")
        else:
            model_id = body["modelId"]
            if model_id in self.versions:
                return 409, _error(409, f"model {model_id} already exists")
            self.versions[model_id] = []
        versions = self.versions[model_id]
        version_id = str(len(versions) + 1)
        aliases = ["default"] if not versions else []
        versions.append(
            {
                **body["model"],
                "name": f"{self.location}/models/{model_id}",
                "versionId": version_id,
                "versionAliases": aliases,
            }
        )
        return 200, {
            "name": f"{self.location}/operations/{model_id}-{version_id}",
            "done": True,
            "response": {
                "@type": "type.googleapis.com/google.cloud.aiplatform.v1.UploadModelResponse",
                "model": f"{self.location}/models/{model_id}",
                "modelVersionId": version_id,
            },
        }

    def _merge(self, request: Recorded, match: re.Match[str]) -> Answer:
        version = self._find(match["id"], match["ref"])
        if version is None:
            return 404, _error(404, "no such version")
        for alias in request.body["versionAliases"]:
            if alias.startswith("-"):
                if alias[1:] in version["versionAliases"]:
                    version["versionAliases"].remove(alias[1:])
                continue
            holders = [v for v in self.versions[match["id"]] if alias in v["versionAliases"]]
            if holders and holders[0] is not version:
                return 400, _error(400, f"alias {alias} is on version {holders[0]['versionId']}")
            if alias not in version["versionAliases"]:
                version["versionAliases"].append(alias)
        return 200, version

    def alias_holder(self, model_id: str, alias: str) -> str | None:
        found = self._find(model_id, alias)
        return None if found is None else found["versionId"]
