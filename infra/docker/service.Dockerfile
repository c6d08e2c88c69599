# One image per service, built from the repository root:
#   docker build -f infra/docker/service.Dockerfile --build-arg SERVICE=collector -t collector .
# Cloud Run sends Pub/Sub push deliveries to it as CloudEvents on $PORT.
FROM python:3.11-slim

ARG SERVICE
ENV SERVICE=${SERVICE} PYTHONUNBUFFERED=1 PORT=8080
WORKDIR /app

COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY cashmatch_cli ./cashmatch_cli
RUN pip install --no-cache-dir . && useradd --create-home cashmatch
USER cashmatch

CMD ["sh", "-c", "exec functions-framework --target handle --signature-type cloudevent --source services/${SERVICE}/main.py --port ${PORT}"]
