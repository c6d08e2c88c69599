"""The benchmark's data: the project simulator (`synth`) or the matcher's own toy generator.

Both give invoices, transfers, matches and, where the generator writes them, notes on the noise
each transfer carries (its pattern), so exact-set accuracy can be read per pattern.
"""

from __future__ import annotations

import inspect


def _config_kwargs(cls, wanted: dict) -> dict:
    # The settings `cls` has, from those given: one given as None takes the config's default,
    # one the config does not have is left out instead of failing.
    fields = getattr(cls, "model_fields", None) or getattr(cls, "__dataclass_fields__", None)
    if fields is None:
        fields = inspect.signature(cls).parameters
    return {k: v for k, v in wanted.items() if k in fields and v is not None}


def synthesize(
    source: str,
    profile: str,
    scale: float,
    seed: int,
    months: int,
    shift_from: str | None = None,
    structured: float | None = None,
):
    """(invoices, transfers, matches, notes) from the project simulator or the toy generator."""
    if source == "toy":
        from cashmatch.domain.matching.toydata import toy_data

        d = toy_data(
            n_months=months, per_month=int(150 * scale), n_counterparties=int(60 * scale), seed=seed
        )
        return d.invoices, d.transfers, d.matches, d.patterns
    from cashmatch.synth import SynthConfig, generate

    kwargs = _config_kwargs(
        SynthConfig,
        {
            "profile": profile,
            "scale": scale,
            "seed": seed,
            "months": months,
            "shift_from": shift_from,
            "structured": structured,
        },
    )
    data = generate(SynthConfig(**kwargs))
    notes = getattr(data, "truth_notes", None)
    return data.invoices, data.transfers, data.matches, notes
