"""`cashmatch serve`, `cashmatch rollback --to VERSION`, `cashmatch serve-stop`: local Ray Serve.

Plain functions over the settings; model_commands.py only parses arguments and calls them. They
print through cashmatch.entrypoints.cli.output and end a failed command with typer.Exit(1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from cashmatch.bootstrap import bootstrap
from cashmatch.entrypoints.cli import output
from cashmatch.ports import PreconditionFailed, Serving
from cashmatch.service_layer.registry import ModelRegistry
from cashmatch.service_layer.release_gate import release_refusal
from cashmatch.settings import Settings, SettingsError

if TYPE_CHECKING:  # Ray is heavy: imported only by the commands that need it
    from cashmatch.adapters.local.ray_serving import LocalRayServing


def _local_serving(settings: Settings) -> LocalRayServing:
    if settings.stack != "local":
        raise SettingsError(
            "CASHMATCH_STACK=gcp: serving runs on GKE there (infra/k8s/rayservice.yaml)"
        )
    from cashmatch.adapters.local.ray_serving import LocalRayServing

    return LocalRayServing(settings)


def serve_command(settings: Settings) -> None:
    """Start local Ray Serve with the deployed (else the champion) version, or with none yet."""
    from cashmatch.adapters.matcher_app import RolloutFailed

    registry = bootstrap(settings).registry
    serving = _local_serving(settings)
    version, held = servable_version(registry, settings)
    if held:
        output.say(held, style="yellow")
    with output.console.status(f"starting Ray Serve on {serving.endpoint}…"):
        if version is None:
            serving.start()
            if serving.model_info() is None:
                serving.apply(None)
            serving.wait_until_answering()
        else:
            try:
                endpoint = serving.roll_out(registry.get(version), registry.override_for(version))
            except (KeyError, RolloutFailed) as exc:
                output.fail(f"cannot serve {version}: {exc}")
                raise typer.Exit(1) from None
            registry.mark_deployed(
                version, endpoint=endpoint, by="cli:serve", reason="cashmatch serve"
            )
    output.table(
        "matcher serving",
        ["endpoint", "model version", "docs"],
        [
            [
                serving.endpoint,
                version or "none yet (health answers 503)",
                f"{serving.endpoint}/docs",
            ]
        ],
    )


def servable_version(registry: ModelRegistry, settings: Settings) -> tuple[str | None, str | None]:
    """What `cashmatch serve` puts in front of traffic: the deployed version, else the champion
    if the release gate lets it through; and why the champion was held back, if it was."""
    deployed = registry.deployed()[0].version
    if deployed is not None:
        return deployed, None
    champion = registry.champion()[0].version
    if champion is None:
        return None, None
    refusal = release_refusal(registry, settings, champion)
    return (None, f"not serving the champion: {refusal}") if refusal else (champion, None)


def roll_back(
    registry: ModelRegistry,
    serving: Serving,
    version: str,
    *,
    by: str,
    settings: Settings,
) -> str:
    """Serve `version` again and point champion and deployed at it; returns the endpoint.

    Only a version that was deployed before may come back: a rollback skips the quality gates,
    so it must not promote a rejected or never-released one (KeyError saying so). The roll-out
    comes first: a version that cannot serve leaves both pointers where they were.
    """
    record = registry.get(version)
    served_before = {change.version for change in registry.deployed()[0].history}
    if version not in served_before:
        verdict = registry.verdict(version)
        state = "rejected" if verdict and not verdict.passed else "never deployed"
        raise KeyError(f"{version} was {state}; a rollback only returns to a version served before")
    refusal = release_refusal(registry, settings, version)
    if refusal is not None:
        raise KeyError(f"{refusal} (the release gate holds rollbacks too)")
    endpoint = serving.roll_out(record, registry.override_for(version))
    for _ in range(10):
        champion, generation = registry.champion()
        if champion.version == version:
            break
        try:
            registry.promote(
                version, generation, by=by, reason=f"rolled back from {champion.version}"
            )
            break
        except PreconditionFailed:  # the evaluator moved it meanwhile: read again
            continue
    else:
        raise PreconditionFailed("the champion pointer kept changing; rollback gave up")
    previous = registry.deployed()[0].version
    registry.mark_deployed(version, endpoint=endpoint, by=by, reason=f"rolled back from {previous}")
    return endpoint


def rollback_command(settings: Settings, version: str) -> None:
    """Roll the local matcher back to `version` and move the champion/deployed pointers."""
    from cashmatch.adapters.matcher_app import RolloutFailed

    # The configured serving (Ray with CASHMATCH_SERVING=ray, GKE on the gcp stack, else the
    # registry alone): the same roll-out the deployer uses, but never an image build. A rollback
    # changes only which version serves; built from where the command runs (a laptop's working
    # tree), an image could ship code nobody released.
    ports = bootstrap(settings.model_copy(update={"serving_build": "never"}))
    registry = ports.registry
    before = registry.deployed()[0].version
    serving = ports.serving
    with output.console.status(f"rolling back to {version}…"):
        try:
            endpoint = roll_back(registry, serving, version, by="cli:rollback", settings=settings)
        except (KeyError, RolloutFailed, PreconditionFailed) as exc:
            reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            output.fail(f"rollback to {version} failed: {reason}")
            raise typer.Exit(1) from None
    output.table(
        "rolled back",
        ["from", "to", "endpoint"],
        [[before, version, endpoint]],
    )


def stop_command(settings: Settings) -> None:
    """Stop local Ray Serve and the workspace's Ray head."""
    from cashmatch.adapters.local.ray_head import stop_local_serving

    with output.console.status("stopping Ray Serve…"):
        outcome = stop_local_serving(settings.workspace)
    output.say(outcome)
