"""What the Vertex AI adapters share: their clients and the label format.

Clients are built only when called; `endpoint` may be `http://127.0.0.1:PORT` for tests, in
which case the REST transport and anonymous credentials are used (the gRPC transport has no
plain-text mode through client options).
"""

from __future__ import annotations

import re
from typing import Any

_LABEL_BAD = re.compile(r"[^a-z0-9_-]")
# The label naming the cashmatch model version, on custom jobs and on registry versions alike.
VERSION_LABEL = "cashmatch_version"


def label_value(text: str) -> str:
    """A Vertex AI label value for any text: lowercase [a-z0-9_-], at most 63 characters."""
    return _LABEL_BAD.sub("_", text.lower())[:63]


def _client_args(endpoint: str) -> dict[str, Any]:
    args: dict[str, Any] = {"client_options": {"api_endpoint": endpoint}}
    if endpoint.startswith("http://"):
        from google.auth.credentials import AnonymousCredentials

        args.update(transport="rest", credentials=AnonymousCredentials())
    return args


def job_client(endpoint: str) -> Any:
    """`aiplatform_v1.JobServiceClient` for a regional endpoint (or a local stand-in)."""
    from google.cloud import aiplatform_v1

    return aiplatform_v1.JobServiceClient(**_client_args(endpoint))


def model_client(endpoint: str) -> Any:
    """`aiplatform_v1.ModelServiceClient` for a regional endpoint (or a local stand-in)."""
    from google.cloud import aiplatform_v1

    return aiplatform_v1.ModelServiceClient(**_client_args(endpoint))
