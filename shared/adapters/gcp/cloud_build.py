"""Cloud Build for the serving image: package code + model into the bucket, build the request.

`package_source` writes one tar.gz to the blob store with the serving code, the model artifact
and its registry record; `build_request` returns the body of Cloud Build's
`projects.builds.create` (REST JSON names) that builds infra/serving.Dockerfile from that
archive and pushes the image tagged with the model version; `submit_build` sends it with
google-cloud-build's client. The image is only needed when serving code changes: a new model
version alone reaches the running RayService through `user_config` (services/matcher/README.md).
"""

from __future__ import annotations

import io
import re
import tarfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from shared.ports import BlobStore
from shared.registry import ModelRecord

DOCKERFILE = "infra/serving.Dockerfile"
# What the serving image is built from, relative to the repository root.
SOURCE_PATHS = ("pyproject.toml", "README.md", "shared", "services", "cashmatch_cli", DOCKERFILE)
_SKIP_PARTS = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")


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
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as archive:
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
) -> dict[str, Any]:
    """The `projects.builds.create` body: docker build from the archive, push `image:version`.

    `image` is the repository path without tag, e.g.
    `europe-west1-docker.pkg.dev/PROJECT/cashmatch/matcher`.
    """
    if not bucket or not source_object or not image:
        raise ValueError("bucket, source_object and image are required")
    tagged = f"{image}:{image_tag(version)}"
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
        "tags": ["cashmatch", "matcher", f"model-{image_tag(version)}"[:128]],
        "timeout": f"{int(timeout_s)}s",
        "options": {"logging": "CLOUD_LOGGING_ONLY"},
    }
    if service_account:
        body["serviceAccount"] = service_account
    return body


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
