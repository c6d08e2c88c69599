"""The one settings object: every knob, validated at startup, from CASHMATCH_* variables.

Values come from (highest first) explicit arguments, environment variables, an optional
settings file named by CASHMATCH_SETTINGS_FILE (a .env-style file), and the defaults below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cashmatch.domain.chunk_size import DEFAULT_CHUNK
from cashmatch.domain.evaluation.gates import QualityGates
from cashmatch.domain.machine_types import (
    DEFAULT_MACHINE_TYPES,
    MachineTable,
    parse_machine_types,
)

if TYPE_CHECKING:
    from cashmatch.domain.monitoring import DriftConfig


class SettingsError(Exception):
    """The configuration is missing or invalid; the message names the setting."""


class GateSettings(BaseSettings, QualityGates):
    """The quality gates from CASHMATCH_GATE_* (the fields are the domain's QualityGates)."""

    model_config = SettingsConfigDict(env_prefix="CASHMATCH_GATE_", extra="ignore", frozen=True)


class Settings(BaseSettings):
    """Everything a cashmatch process needs to know; built once per process by bootstrap()."""

    model_config = SettingsConfigDict(env_prefix="CASHMATCH_", extra="ignore")

    stack: Literal["local", "gcp"] = "local"
    workspace: Path = Field(Path(".cashmatch"), description="local stack: bus, blobs, registry")
    warehouse: str = Field(
        "", description="local: path of a DuckDB file; gcp: project.dataset in BigQuery"
    )
    bucket: str = Field("", description="gcp: Cloud Storage bucket for datasets and models")
    project: str = Field("", description="gcp: project id")
    region: str = "europe-west1"
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    split_seed: int = 20240624
    max_attempts: int = Field(5, ge=1, le=100)
    min_backoff_s: float = Field(1.0, ge=0.0)
    max_backoff_s: float = Field(60.0, ge=0.0)
    lease_s: float = Field(600.0, gt=0.0)
    serve_port: int = Field(8000, ge=1, le=65535)
    match_chunk: int = Field(
        DEFAULT_CHUNK,
        ge=1,
        description="batch matching, scoring and drift: transfers (whole booking days) matched "
        "at a time; memory grows with it, the results do not change",
    )
    # the web console (`cashmatch ui`, services/console)
    console_port: int = Field(8765, ge=1, le=65535, description="console: the port it serves on")
    console_host: str = Field(
        "127.0.0.1", description="console: the address it binds (loopback unless told otherwise)"
    )
    console_allow_remote: bool = Field(
        False, description="console: allow binding an address other than loopback"
    )
    console_auth: Literal["token", "iap"] = Field(
        "token",
        description="console: 'token' (the workspace's token, for a laptop) or 'iap' (behind "
        "Identity-Aware Proxy on Cloud Run: the proxy's user header names who acts)",
    )
    console_csrf_key: str = Field(
        "",
        description="console with iap: the key its CSRF tokens are signed with (empty: one made "
        "at start, right for a single instance)",
    )
    push_audience: str = Field(
        "", description="when set, every push must carry a Google OIDC token for this audience"
    )
    push_service_account: str = Field(
        "", description="when set, the push token must be signed for this service account"
    )
    push_certs_url: str = Field(
        "https://www.googleapis.com/oauth2/v1/certs", description="where Google's keys are"
    )
    approval_required: bool = Field(
        False, description="hold every roll-out until `cashmatch approve VERSION`"
    )
    serving: Literal["none", "ray"] = Field(
        "none", description="local: 'ray' rolls each champion out to Ray Serve on 127.0.0.1"
    )
    drift_psi_threshold: float = Field(0.1, ge=0.0, description="numeric columns: material PSI")
    drift_min_rate_change: float = Field(0.05, ge=0.0, le=1.0, description="rates: material change")
    drift_max_auto_rate_drop: float = Field(
        0.05, ge=0.0, le=1.0, description="flag the champion when its auto_rate@99 drops more"
    )
    # The promise checked at every close (service_layer/performance.py).
    guardrail_target: float = Field(
        0.99,
        gt=0.0,
        le=1.0,
        description="promised share of auto-settled transfers that are exactly right; a closed "
        "month whose Wilson 95% lower bound falls below it publishes performance.breached",
    )
    guardrail_action: Literal["raise-threshold", "rollback", "alert"] = Field(
        "raise-threshold",
        description="on a breach: raise the serving threshold to the lowest value that held the "
        "target on the month, roll back to the last version whose realized precision held, or "
        "only alert",
    )
    # gcp serving: the matcher's KubeRay RayService on GKE (set gke_endpoint to turn it on).
    gke_endpoint: str = Field(
        "",
        description="gcp: URL of the GKE control plane (https://...); set, the deployer patches "
        "the RayService's user_config on every roll-out and waits for the version",
    )
    gke_ca_certificate: str = Field(
        "",
        description="base64 PEM of the cluster CA (Terraform's cluster_ca_certificate); empty: "
        "the system's CAs (right for the cluster's DNS endpoint)",
    )
    gke_namespace: str = Field("default", description="namespace of the RayService")
    gke_rayservice: str = Field("cashmatch-matcher", description="name of the RayService")
    gke_rollout_timeout_s: float = Field(
        420.0, gt=0.0, description="how long a roll-out may take to report the new version"
    )
    serving_build: Literal["auto", "always", "never"] = Field(
        "auto",
        description="build the serving image with Cloud Build: 'auto' when the serving code "
        "differs from what the RayService runs, 'always' on every roll-out, 'never'",
    )
    serving_image_repository: str = Field(
        "",
        description="where Cloud Build pushes the matcher image, without tag "
        "(REGION-docker.pkg.dev/PROJECT/cashmatch/matcher); needed unless serving_build=never",
    )
    build_service_account: str = Field(
        "", description="email of the account Cloud Build runs as (Terraform's build account)"
    )
    build_timeout_s: int = Field(
        1200, ge=60, le=86400, description="Cloud Build's timeout, and how long the deployer waits"
    )
    # gcp training on Vertex AI, and mirroring champions into its Model Registry.
    vertex_training: bool = Field(
        False, description="gcp: train each candidate as a Vertex AI custom job, not in process"
    )
    vertex_training_image: str = Field(
        "", description="image the custom job runs (the trainer's service image)"
    )
    vertex_machine_types: str = Field(
        DEFAULT_MACHINE_TYPES,
        description="the custom job's machine type by the month's transfers: "
        "'<=N:TYPE,...,*:TYPE', the first row whose bound holds the month wins",
    )
    vertex_service_account: str = Field(
        "", description="email of the account the custom job runs as (empty: Vertex's default)"
    )
    vertex_training_wait_s: float = Field(
        540.0,
        gt=0.0,
        description="how long one delivery waits for the job; then it is retried and finds the "
        "same job again (stay under the push ack deadline, 600 s)",
    )
    vertex_registry: bool = Field(
        False, description="gcp: mirror each champion into Vertex AI Model Registry"
    )
    vertex_serving_image: str = Field(
        "", description="serving container image recorded with each uploaded model version"
    )
    vertex_model_id: str = Field(
        "cashmatch-matcher",
        pattern=r"^[a-z0-9][a-z0-9-]{0,62}$",
        description="id of the Vertex AI model whose versions are our champions",
    )
    vertex_endpoint: str = Field(
        "", description="Vertex AI API endpoint; empty: REGION-aiplatform.googleapis.com"
    )
    gates: QualityGates = Field(default_factory=lambda: GateSettings())

    @field_validator("vertex_machine_types")
    @classmethod
    def _machine_table(cls, value: str) -> str:
        parse_machine_types(value)  # a bad table fails at startup, naming its row
        return value

    @property
    def vertex_machine_table(self) -> MachineTable:
        """CASHMATCH_VERTEX_MACHINE_TYPES parsed (domain/machine_types.py)."""
        return parse_machine_types(self.vertex_machine_types)

    @model_validator(mode="after")
    def _stack_needs(self) -> Settings:
        if self.stack == "gcp":
            missing = [n for n in ("bucket", "project", "warehouse") if not getattr(self, n)]
            if missing:
                names = ", ".join(f"CASHMATCH_{n.upper()}" for n in missing)
                raise ValueError(f"the gcp stack needs {names}")
        self._check_gcp_extras()
        return self

    def _check_gcp_extras(self) -> None:
        """GKE serving and Vertex AI are gcp features; each names what it is missing."""
        used = [
            name
            for name, on in (
                ("CASHMATCH_GKE_ENDPOINT", bool(self.gke_endpoint)),
                ("CASHMATCH_VERTEX_TRAINING", self.vertex_training),
                ("CASHMATCH_VERTEX_REGISTRY", self.vertex_registry),
            )
            if on
        ]
        if used and self.stack != "gcp":
            raise ValueError(f"{', '.join(used)} need CASHMATCH_STACK=gcp")
        needs = {
            "CASHMATCH_SERVING_IMAGE_REPOSITORY": bool(self.gke_endpoint)
            and self.serving_build != "never"
            and not self.serving_image_repository,
            "CASHMATCH_VERTEX_TRAINING_IMAGE": self.vertex_training
            and not self.vertex_training_image,
            "CASHMATCH_VERTEX_SERVING_IMAGE": self.vertex_registry
            and not self.vertex_serving_image,
        }
        missing = [name for name, lacking in needs.items() if lacking]
        if missing:
            raise ValueError(
                f"set {', '.join(missing)} (GKE builds need the image repository unless "
                "CASHMATCH_SERVING_BUILD=never; Vertex training and registry need their images)"
            )
        for name, url in (
            ("CASHMATCH_GKE_ENDPOINT", self.gke_endpoint),
            ("CASHMATCH_VERTEX_ENDPOINT", self.vertex_endpoint),
        ):
            if url and not _secure_or_loopback(url):
                raise ValueError(f"{name} must be https:// (plain http only to 127.0.0.1)")

    @property
    def vertex_api_endpoint(self) -> str:
        """Where the Vertex AI clients connect: the setting, else the regional endpoint."""
        return self.vertex_endpoint or f"{self.region}-aiplatform.googleapis.com"

    @property
    def drift(self) -> DriftConfig:
        """The monitor's thresholds."""
        # Imported when asked for: the monitoring package needs scipy and rapidfuzz (the `model`
        # extra), which the collector's, deployer's and alerter's images do not install.
        from cashmatch.domain.monitoring import DriftConfig

        return DriftConfig(
            psi_threshold=self.drift_psi_threshold,
            min_rate_change=self.drift_min_rate_change,
            max_auto_rate_drop=self.drift_max_auto_rate_drop,
        )

    @property
    def warehouse_path(self) -> Path:
        """The DuckDB file of the local stack."""
        if not self.warehouse:
            raise SettingsError(
                "no warehouse configured: set CASHMATCH_WAREHOUSE to a DuckDB file "
                "(e.g. one written by `cashmatch synth`)"
            )
        return Path(self.warehouse).expanduser().resolve()


def _secure_or_loopback(url: str) -> bool:
    """https anywhere; plain http only to this machine (tests, a local proxy)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url if "://" in url else f"https://{url}")
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


def load_settings(**overrides: Any) -> Settings:
    """Build and validate the settings; raise SettingsError naming each bad variable."""
    env_file = os.environ.get("CASHMATCH_SETTINGS_FILE")
    if env_file and not Path(env_file).is_file():
        raise SettingsError(f"CASHMATCH_SETTINGS_FILE={env_file}: no such file")
    _reject_unknown(env_file)
    gate_overrides = overrides.pop("gates", None)
    try:
        gates = gate_overrides or GateSettings(_env_file=env_file)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, "CASHMATCH_GATE_")) from None
    try:
        return Settings(_env_file=env_file, gates=gates, **overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, "CASHMATCH_")) from None


def _known_names() -> set[str]:
    names = {f"CASHMATCH_{n.upper()}" for n in Settings.model_fields if n != "gates"}
    names |= {f"CASHMATCH_GATE_{n.upper()}" for n in QualityGates.model_fields}
    return names | {"CASHMATCH_SETTINGS_FILE"}


# Names that meant something once: setting one would now be read by nothing, so say what
# replaced it rather than call it unknown.
RETIRED = {
    "CASHMATCH_VERTEX_MACHINE_TYPE": (
        "the machine now follows the month's size: set CASHMATCH_VERTEX_MACHINE_TYPES "
        "(e.g. '*:n1-standard-8' for one type for every month)"
    ),
    "CASHMATCH_GATE_MIN_GAIN": (
        "a point-estimate gain can never beat a saturated champion; promotion now rests on a "
        "paired comparison at significance CASHMATCH_GATE_ALPHA (docs/DESIGN.md, "
        '"Champion, candidate and the quality gates")'
    ),
}


def _reject_unknown(env_file: str | None) -> None:
    """A misspelt variable would silently fall back to a default: name it instead."""
    given = {k for k in os.environ if k.upper().startswith("CASHMATCH_")}
    if env_file:
        # The file is cashmatch's own: every name in it must be one (a name without the
        # CASHMATCH_ prefix would be read by nothing).
        for line in Path(env_file).read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                given.add(line.split("=", 1)[0].strip().removeprefix("export ").strip())
    retired = sorted(n for n in given if n.upper() in RETIRED)
    if retired:
        raise SettingsError(
            "; ".join(f"{n} is no longer a setting: {RETIRED[n.upper()]}" for n in retired)
        )
    unknown = sorted(n for n in given if n.upper() not in _known_names())
    if unknown:
        raise SettingsError(
            f"unknown setting(s): {', '.join(unknown)} (names start with CASHMATCH_; "
            "see shared/src/cashmatch/settings.py)"
        )


def _describe(exc: ValidationError, prefix: str) -> str:
    lines = []
    for err in exc.errors():
        loc = "_".join(str(p) for p in err["loc"]).upper()
        if loc:  # one variable: show what it was set to
            lines.append(f"{prefix}{loc}: {err['msg']} (got {err.get('input')!r})")
        else:  # the settings as a whole (the input is all of them): the message says which
            lines.append(f"settings: {err['msg']}")
    return "invalid settings:\n  " + "\n  ".join(lines)
