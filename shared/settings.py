"""The one settings object: every knob, validated at startup, from CASHMATCH_* variables.

Values come from (highest first) explicit arguments, environment variables, an optional
settings file named by CASHMATCH_SETTINGS_FILE (a .env-style file), and the defaults below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from shared.monitoring import DriftConfig


class SettingsError(Exception):
    """The configuration is missing or invalid; the message names the setting."""


class QualityGates(BaseSettings):
    """The evaluator's thresholds: how a candidate earns promotion."""

    model_config = SettingsConfigDict(env_prefix="CASHMATCH_GATE_", extra="ignore")

    primary_metric: str = "auto_rate@99"
    min_gain: float = Field(
        0.002, ge=0.0, le=1.0, description="how much the candidate must beat the champion by"
    )
    guard_metrics: tuple[str, ...] = ("exact_set_accuracy", "pair_f1")
    max_guard_regression: float = Field(0.005, ge=0.0, le=1.0)
    floor_auto_rate: float = Field(0.30, ge=0.0, le=1.0, description="absolute floor, first model")
    floor_exact_set_accuracy: float = Field(0.60, ge=0.0, le=1.0)


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
    gates: QualityGates = Field(default_factory=lambda: QualityGates())

    @model_validator(mode="after")
    def _stack_needs(self) -> Settings:
        if self.stack == "gcp":
            missing = [n for n in ("bucket", "project", "warehouse") if not getattr(self, n)]
            if missing:
                names = ", ".join(f"CASHMATCH_{n.upper()}" for n in missing)
                raise ValueError(f"the gcp stack needs {names}")
        return self

    @property
    def drift(self) -> DriftConfig:
        """The monitor's thresholds."""
        from shared.monitoring import DriftConfig

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


def load_settings(**overrides: Any) -> Settings:
    """Build and validate the settings; raise SettingsError naming each bad variable."""
    env_file = os.environ.get("CASHMATCH_SETTINGS_FILE")
    if env_file and not Path(env_file).is_file():
        raise SettingsError(f"CASHMATCH_SETTINGS_FILE={env_file}: no such file")
    _reject_unknown(env_file)
    gate_overrides = overrides.pop("gates", None)
    try:
        gates = gate_overrides or QualityGates(_env_file=env_file)
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


def _reject_unknown(env_file: str | None) -> None:
    """A misspelt variable would silently fall back to a default: name it instead."""
    given = {k for k in os.environ if k.upper().startswith("CASHMATCH_")}
    if env_file:
        for line in Path(env_file).read_text().splitlines():
            name = line.split("=", 1)[0].strip().removeprefix("export ").strip()
            if name.upper().startswith("CASHMATCH_"):
                given.add(name)
    unknown = sorted(n for n in given if n.upper() not in _known_names())
    if unknown:
        raise SettingsError(f"unknown setting(s): {', '.join(unknown)}")


def _describe(exc: ValidationError, prefix: str) -> str:
    lines = []
    for err in exc.errors():
        loc = "_".join(str(p) for p in err["loc"]).upper()
        name = f"{prefix}{loc}" if loc else "settings"
        lines.append(f"{name}: {err['msg']} (got {err.get('input')!r})")
    return "invalid settings:\n  " + "\n  ".join(lines)
