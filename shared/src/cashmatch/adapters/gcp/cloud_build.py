"""Cloud Build for the serving image: package code + model into the bucket, build the request.

`package_source` writes one tar.gz to the blob store with the serving code, the model artifact
and its registry record; `build_request` returns the body of Cloud Build's
`projects.builds.create` (REST JSON names) that builds infra/serving.Dockerfile from that
archive and pushes the image tagged with the model version; `submit_build` sends it with
google-cloud-build's client. The image is only needed when serving code changes: a new model
version alone reaches the running RayService through `user_config` (services/matcher/README.md).
`code_digest` names the serving code, and `CloudBuildImages` is what the GKE roll-out uses:
find or submit the build of (model version, code digest) and wait for its image.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import re
import tarfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cashmatch.domain.model_records import ModelRecord
from cashmatch.ports import BlobStore

DOCKERFILE = "infra/serving.Dockerfile"
# What the serving image is built from, relative to the repository root.
SOURCE_PATHS = ("pyproject.toml", "uv.lock", "README.md", "shared", "services", DOCKERFILE)
_SKIP_PARTS = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
log = logging.getLogger(__name__)


class BuildFailed(RuntimeError):
    """The image build ended without an image (failure, timeout, cancellation)."""


class BuildStillRunning(RuntimeError):
    """The build outlived this wait; a retry finds it by its tags and waits again."""


def _source_files(root: Path, paths: Iterable[str]) -> list[tuple[Path, str]]:
    files = []
    for rel in paths:
        path = root / rel
        if path.is_file():
            files.append((path, rel))
            continue
        if not path.is_dir():
            raise FileNotFoundError(f"{rel} is not in {root}")
        for item in sorted(path.rglob("*")):
            if item.is_file() and not _SKIP_PARTS & set(item.parts) and item.suffix != ".pyc":
                files.append((item, item.relative_to(root).as_posix()))
    return files


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0  # the same inputs give the same archive bytes
    archive.addfile(info, io.BytesIO(data))


def package_source(
    blobs: BlobStore,
    record: ModelRecord,
    code_root: Path,
    *,
    paths: Iterable[str] = SOURCE_PATHS,
    prefix: str = "builds",
) -> str:
    """Write `<prefix>/<version>/source.tar.gz` (code, model, record); return its key.

    The model is read through the registry's URI, so it is exactly the registered artifact.
    """
    model = blobs.get(blobs.key_from_uri(record.model_uri)).data
    buffer = io.BytesIO()
    # gzip stamps the time into its header unless told otherwise (tarfile's "w:gz" cannot).
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6, mtime=0) as packed,
        tarfile.open(fileobj=packed, mode="w") as archive,
    ):
        for path, name in _source_files(code_root, paths):
            _add(archive, name, path.read_bytes())
        _add(archive, "model/model.skops.zip", model)
        _add(archive, "model/record.json", record.model_dump_json(indent=2).encode())
    key = f"{prefix}/{record.version}/source.tar.gz"
    blobs.put(key, buffer.getvalue())
    return key


def image_tag(version: str) -> str:
    """A Docker tag for a model version (tags allow [A-Za-z0-9_.-], at most 128)."""
    tag = re.sub(r"[^\w.-]", "-", version)[:128]
    if not _TAG.match(tag):
        raise ValueError(f"cannot make a Docker tag of version {version!r}")
    return tag


def build_request(
    *,
    bucket: str,
    source_object: str,
    image: str,
    version: str,
    dockerfile: str = DOCKERFILE,
    timeout_s: int = 1200,
    service_account: str | None = None,
    tag: str | None = None,
    extra_tags: Iterable[str] = (),
) -> dict[str, Any]:
    """The `projects.builds.create` body: docker build from the archive, push `image:version`.

    `image` is the repository path without tag, e.g.
    `europe-west1-docker.pkg.dev/PROJECT/cashmatch/matcher`; `tag` replaces the version as the
    image tag, `extra_tags` are added to the build's own tags (to find it again).
    """
    if not bucket or not source_object or not image:
        raise ValueError("bucket, source_object and image are required")
    tagged = f"{image}:{image_tag(tag or version)}"
    body: dict[str, Any] = {
        "source": {"storageSource": {"bucket": bucket, "object": source_object}},
        "steps": [
            {
                "id": "build",
                "name": "gcr.io/cloud-builders/docker",
                "args": [
                    "build",
                    "--file",
                    dockerfile,
                    "--tag",
                    tagged,
                    "--label",
                    f"cashmatch.model-version={version}",
                    ".",
                ],
            }
        ],
        "images": [tagged],
        "tags": [
            "cashmatch",
            "matcher",
            f"model-{image_tag(version)}"[:128],
            *(build_tag(t) for t in extra_tags),
        ],
        "timeout": f"{int(timeout_s)}s",
        "options": {"logging": "CLOUD_LOGGING_ONLY"},
    }
    if service_account:
        body["serviceAccount"] = service_account
    return body


def build_tag(text: str) -> str:
    """A Cloud Build tag (lowercase [a-z0-9_.-], at most 128) for any text."""
    return re.sub(r"[^a-z0-9_.-]", "-", text.lower())[:128]


def submit_build(client: Any, project: str, body: dict[str, Any], *, wait_s: float = 0) -> str:
    """Send the request with a `cloudbuild_v1.CloudBuildClient`; return the build id.

    With `wait_s` > 0, wait that long for the build and raise unless it succeeded.
    """
    import json

    from google.cloud.devtools.cloudbuild_v1.types import Build

    build = Build.from_json(json.dumps(body))
    operation = client.create_build(project_id=project, build=build)
    build_id = str(operation.metadata.build.id)
    if wait_s > 0:
        started = time.monotonic()
        result = operation.result(timeout=wait_s)
        if result.status != Build.Status.SUCCESS:
            raise RuntimeError(
                f"build {build_id} ended {result.status.name} after "
                f"{time.monotonic() - started:.0f}s: {result.status_detail}"
            )
    return build_id


def code_digest(code_root: Path, paths: Iterable[str] = SOURCE_PATHS) -> str:
    """sha256 over the serving code's file names and bytes (what the image is built from)."""
    digest = hashlib.sha256()
    for path, name in _source_files(code_root, paths):
        digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def split_gs_uri(uri: str) -> tuple[str, str]:
    """(bucket, object) of a gs:// URI; ValueError for anything else."""
    if not uri.startswith("gs://") or "/" not in uri[5:]:
        raise ValueError(f"Cloud Build reads its source from Cloud Storage, not {uri}")
    bucket, name = uri[5:].split("/", 1)
    return bucket, name


def service_account_name(account: str) -> str:
    """Cloud Build's serviceAccount field wants projects/-/serviceAccounts/EMAIL."""
    if not account or account.startswith("projects/"):
        return account
    return f"projects/-/serviceAccounts/{account}"


_DONE_OK = "SUCCESS"
_RUNNING = {"STATUS_UNKNOWN", "PENDING", "QUEUED", "WORKING"}


class CloudBuildImages:
    """Builds the matcher image for a (model version, serving code) pair, once.

    A build is found again by its tags, so a deployer that was stopped while waiting (Cloud
    Run's request timeout, a redelivery) waits for the same build instead of starting another.
    """

    def __init__(
        self,
        client: Any,
        blobs: BlobStore,
        *,
        project: str,
        repository: str,
        code_root: Path,
        service_account: str = "",
        timeout_s: int = 1200,
        poll_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.blobs = blobs
        self.project = project
        self.repository = repository
        self.code_root = code_root
        self.service_account = service_account_name(service_account)
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.sleep = sleep

    def image_for(self, version: str, code: str) -> str:
        """The image reference a build of `version` with code `code` pushes."""
        return f"{self.repository}:{self._tag(version, code)}"

    @staticmethod
    def _tag(version: str, code: str) -> str:
        # The code digest is part of the tag: new code for the same model is a new image, so
        # KubeRay sees a changed image and rolls a new cluster out.
        return image_tag(f"{version}-code-{code[:12]}")

    def build(self, record: ModelRecord, code: str) -> str:
        """Find or submit the build, wait for it, return the pushed image; BuildFailed if not."""
        marker = build_tag(f"code-{code[:12]}")
        model_marker = f"model-{image_tag(record.version)}"[:128]  # as build_request tags it
        build_id = self._find(model_marker, marker)
        if build_id is None:
            key = package_source(self.blobs, record, self.code_root)
            bucket, name = split_gs_uri(self.blobs.uri(key))
            body = build_request(
                bucket=bucket,
                source_object=name,
                image=self.repository,
                version=record.version,
                timeout_s=self.timeout_s,
                service_account=self.service_account or None,
                tag=self._tag(record.version, code),
                extra_tags=[marker],
            )
            build_id = submit_build(self.client, self.project, body)
            log.info("submitted Cloud Build %s for %s (code %s)", build_id, record.version, marker)
        else:
            log.info("waiting for the existing Cloud Build %s of %s", build_id, record.version)
        self._wait(build_id)
        return self.image_for(record.version, code)

    def _find(self, *tags: str) -> str | None:
        """The newest build with these tags that succeeded or still runs, if any."""
        query = " AND ".join(f'tags="{t}"' for t in tags)
        for build in self.client.list_builds(project_id=self.project, filter=query):
            if build.status.name == _DONE_OK or build.status.name in _RUNNING:
                return str(build.id)
        return None

    def _wait(self, build_id: str) -> None:
        started = time.monotonic()
        while True:
            build = self.client.get_build(project_id=self.project, id=build_id)
            state = build.status.name
            if state == _DONE_OK:
                return
            if state not in _RUNNING:
                raise BuildFailed(f"Cloud Build {build_id} ended {state}: {build.status_detail}")
            if time.monotonic() - started > self.timeout_s:
                raise BuildStillRunning(
                    f"Cloud Build {build_id} still {state} after {self.timeout_s}s"
                )
            self.sleep(self.poll_s)
