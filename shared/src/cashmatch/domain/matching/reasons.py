"""Why an invoice was proposed: machine-readable reason codes and one sentence for a person.

Reasons are read from what the prediction already computed, never recomputed: the pair's
blocking flags and features (which reference key matched, how similar the reference is, the
payer's history) and the chosen option's set features (its kind, how its sum fits the amount,
credit notes in it). The same prediction therefore always gives the same reasons, and a reviewer
sees the evidence the model weighed, not only its score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cashmatch.domain.matching.assembly import KIND_OLDEST_RUN
from cashmatch.domain.reason_codes import REASON_CODES, REASONS

_MAX_PHRASES = 3  # a sentence a person reads at a glance: the strongest three reasons
_SHARE = 0.5  # learned payer knowledge counts as a reason when it points this way this often

# The pair features reasons read (columns of `features.FEATURES`).
_PAIR_COLUMNS = [
    "ref_C",
    "ref_D",
    "ref_Z",
    "ref_S",
    "ref_RF",
    "by_tax",
    "ref_partial",
    "number_len",
    "tax_in_title",
    "vat_fits",
    "iban_eq",
    "name_sim",
    "payer_iban_share",
    "payer_name_share",
    "payer_title_share",
    "eq_open",
    "n_same_amount_cp",
    "same_amount_rank_old",
]
_C = {c: k for k, c in enumerate(_PAIR_COLUMNS)}


@dataclass(frozen=True)
class Reasons:
    """The reason codes of one proposed invoice (REASON_CODES order) and their sentence."""

    codes: tuple[str, ...]
    why: str


def sentence(codes: tuple[str, ...]) -> str:
    """One short sentence for a person from the strongest codes."""
    if not codes:
        return "Proposed on the model's overall score; no single reason stands out."
    text = "; ".join(REASONS[c] for c in codes[:_MAX_PHRASES])
    return text[0].upper() + text[1:] + "."


def _typos(partial: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Edits between the invoice number and its best window in the title, from the similarity
    features computed it: rapidfuzz's partial ratio is 1 - indel / (2 n) for a number of n
    characters, and one typed-over character costs two indels (one edit)."""
    indel = np.rint((1.0 - partial.astype(np.float64)) * 2.0 * length)
    return np.ceil(indel / 2.0)


def _code_matrix(
    x: np.ndarray,
    kind: np.ndarray,
    fit: np.ndarray,
    size: np.ndarray,
    n_credit: np.ndarray,
    resid: np.ndarray,
) -> np.ndarray:
    """One boolean column per code (REASON_CODES order) for each proposed pair; the set's
    features come per pair (the option each pair is proposed in)."""

    def col(name: str) -> np.ndarray:
        return x[:, _C[name]]

    strong_whole = col("ref_C") > 0
    strong_digits = (col("ref_D") > 0) | (col("ref_Z") > 0)
    any_strong = strong_whole | strong_digits
    edits = _typos(col("ref_partial"), col("number_len"))
    fuzzy = ~any_strong & (col("number_len") >= 5)
    run = kind == KIND_OLDEST_RUN
    single = size == 1
    codes = {
        "rf-reference": col("ref_RF") > 0,
        "reference:exact": strong_whole & (col("ref_RF") == 0),
        "reference:reformatted": ~strong_whole & strong_digits,
        "reference:1-edit": fuzzy & (edits == 1),
        "reference:2-edits": fuzzy & (edits == 2) & (col("number_len") >= 8),
        "reference:sequence-only": ~any_strong & (edits > 2) & (col("ref_S") > 0),
        "tax-id": (col("by_tax") > 0) | (col("tax_in_title") > 0),
        "vat:consistent": col("vat_fits") > 0,
        "amount:equal": single & (fit == 2),
        "amount:subset-sum": ~single & ~run & (fit == 2),
        "amount:period-balance": run & (fit > 0),
        "amount:fee-or-discount": fit == 1,
        "amount:partial": (fit == 0) & (resid > 0),
        "amount:overpaid": (fit == 0) & (resid < 0),
        "credit-note:netted": n_credit > 0,
        "payer:same-account": col("iban_eq") > 0,
        "payer:known-account": (col("iban_eq") == 0) & (col("payer_iban_share") >= _SHARE),
        "payer:known-name": col("payer_name_share") >= _SHARE,
        "payer:name": col("name_sim") >= 0.9,
        "payer:title-token": col("payer_title_share") >= _SHARE,
        "invoice:oldest-equal": (col("n_same_amount_cp") > 1) & (col("same_amount_rank_old") == 0),
    }
    return np.column_stack([codes[c] for c in REASON_CODES])


def proposal_reasons(
    X: pd.DataFrame, rows: np.ndarray, opts: pd.DataFrame, options: np.ndarray
) -> list[Reasons]:
    """The reasons of every proposed pair: `rows` are pair rows of `X`, `options` the option
    row (of `opts`) each is proposed in."""
    if len(rows) == 0:
        return []
    x = X[_PAIR_COLUMNS].iloc[rows].to_numpy() if len(rows) < 256 else _columns(X, rows)
    m = _code_matrix(
        x,
        opts["kind"].to_numpy()[options],
        opts["fit"].to_numpy()[options],
        opts["size"].to_numpy()[options],
        opts["n_credit"].to_numpy()[options],
        opts["rel_resid"].to_numpy()[options],
    )
    # Few distinct combinations occur: each is spelled out once.
    patterns, inverse = np.unique(m, axis=0, return_inverse=True)
    spelled = [_spell(p) for p in patterns]
    return [spelled[k] for k in inverse.reshape(-1).tolist()]


def _columns(X: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """The reason columns of `rows`, column by column (no copy of the whole matrix)."""
    return np.column_stack([X[c].to_numpy()[rows] for c in _PAIR_COLUMNS])


def _spell(pattern: np.ndarray) -> Reasons:
    codes = tuple(c for c, on in zip(REASON_CODES, pattern.tolist(), strict=True) if on)
    return Reasons(codes, sentence(codes))


def joined(codes: tuple[str, ...]) -> str:
    """Codes as the CSV writes them: semicolon-separated."""
    return ";".join(codes)
