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

from cashmatch.domain.matching.assembly import KIND_OLDEST_RUN, SET_FEATURES
from cashmatch.domain.matching.cp_sets import KIND_PERIOD
from cashmatch.domain.matching.features import FEATURES
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
_IN_X = np.array([FEATURES.index(c) for c in _PAIR_COLUMNS])
# The set features reasons read, in `_code_matrix`'s argument order; the option frame is `t`
# then SET_FEATURES.
_SET_COLUMNS = ["kind", "fit", "size", "n_credit", "rel_resid"]
_IN_OPTS = [1 + SET_FEATURES.index(c) for c in _SET_COLUMNS]
_SMALL_OPTIONS = 4096


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
    run = (kind == KIND_OLDEST_RUN) | (kind == KIND_PERIOD)
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
    # The feature frame is one float32 block: to_numpy is a view, so only `rows` are copied
    # (selecting columns by name first costs milliseconds on a one-transfer request).
    x = X.to_numpy()[rows][:, _IN_X]
    o = _option_columns(opts, options)
    m = _code_matrix(x, *(o[:, k] for k in range(len(_SET_COLUMNS))))
    # Few distinct combinations occur: each is spelled out once per process (bit k: code k).
    keys = m.astype(np.int64) @ _CODE_BITS
    return [_SPELLED.get(key) or _spell(key) for key in keys.tolist()]


def _option_columns(opts: pd.DataFrame, options: np.ndarray) -> np.ndarray:
    """The `_SET_COLUMNS` of the `options` rows: through one array on a request's few options
    (pandas' per-column access costs more), by position on a batch's many."""
    if len(opts) <= _SMALL_OPTIONS:
        return opts.to_numpy(np.float64)[options][:, _IN_OPTS]
    return opts.iloc[options, _IN_OPTS].to_numpy(np.float64)


_CODE_BITS = np.int64(1) << np.arange(len(REASON_CODES), dtype=np.int64)
_SPELLED: dict[int, Reasons] = {}  # at most one entry per combination of codes seen


def _spell(key: int) -> Reasons:
    codes = tuple(c for k, c in enumerate(REASON_CODES) if key >> k & 1)
    reasons = Reasons(codes, sentence(codes))
    _SPELLED[key] = reasons  # a race only spells one twice
    return reasons


def joined(codes: tuple[str, ...]) -> str:
    """Codes as the CSV writes them: semicolon-separated."""
    return ";".join(codes)
