"""The one gate before a version reaches traffic: the deployer, `cashmatch serve` and
`cashmatch rollback` all ask it, so no path can serve what the approval policy holds back."""

from __future__ import annotations

from cashmatch.service_layer.registry import ModelRegistry
from cashmatch.settings import Settings


def release_refusal(registry: ModelRegistry, settings: Settings, version: str) -> str | None:
    """Why `version` may not be put in front of traffic, in words; None when it may.

    With CASHMATCH_APPROVAL_REQUIRED a version serves only once a person approved it
    (`cashmatch approve`); a rejection is final.
    """
    if not settings.approval_required:
        return None
    approval = registry.approval(version)
    if approval is None:
        return f"{version} waits for approval: cashmatch approve {version}"
    if not approval.approved:
        return f"{version} not rolled out: rejected by {approval.by}: {approval.reason}"
    return None
