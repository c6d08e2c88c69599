# The matcher's Ray Serve image for GKE (KubeRay RayService, infra/k8s/rayservice.yaml).
# Built by Cloud Build from the archive shared/src/cashmatch/adapters/gcp/cloud_build.py writes (code, model,
# registry record), or by hand from the repository root:
#   docker build -f infra/serving.Dockerfile -t matcher:dev .
# The image carries the serving code; which model version serves comes from the RayService's
# user_config and the registry in the bucket, so a new model needs no new image. The model the
# image was built for is kept in /app/model for provenance (and read by nothing else).
FROM rayproject/ray:2.60.0-py311-cpu

# Numeric users throughout (hadolint DL3066): 0 is root, 1000:100 is the base image's "ray".
USER 0
WORKDIR /app
ENV PYTHONUNBUFFERED=1 RAY_USAGE_STATS_ENABLED=0

COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
# The matcher's member alone, from uv.lock, into /app/.venv; its Ray is the lock's (2.60.0,
# the base image's own version, so KubeRay's `ray start` and the Serve app agree).
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv PATH=/app/.venv/bin:$PATH
COPY pyproject.toml uv.lock README.md ./
COPY shared ./shared
COPY services ./services
RUN uv sync --locked --no-dev --no-editable --no-cache --package cashmatch-matcher \
    && mkdir -p /app/model \
    && chown -R 1000:100 /app
# model/ is in the Cloud Build archive; the Dockerfile is named too so that this COPY has a
# source when building from a plain checkout, where model/ does not exist.
COPY --chown=1000:100 infra/serving.Dockerfile model* /app/model/

USER 1000
# KubeRay starts Ray itself (ray start ...) and applies serveConfigV2 to this cluster.
