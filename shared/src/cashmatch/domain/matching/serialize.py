"""Safe persistence of a trained matcher's parts (`MatcherParts`): no pickle anywhere.

The file is a zip with a manifest of SHA-256 digests, JSON metadata, the two estimators in skops
format, loaded with an explicit list of trusted types, and the payer knowledge as parquet. Anything
unexpected (not a zip, a missing or extra member, a digest mismatch, an unknown format version, a
type outside the trusted list, a wrong feature count) raises ValueError instead of loading.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from dataclasses import dataclass

import pandas as pd
import sklearn
import skops.io as sio
from sklearn.ensemble import HistGradientBoostingClassifier

from cashmatch.domain.matching.assembly import SET_FEATURES
from cashmatch.domain.matching.config import MatcherConfig
from cashmatch.domain.matching.features import FEATURES
from cashmatch.domain.matching.knowledge import HABIT_COLUMNS, OBS_COLUMNS

FORMAT = "cashmatch-matcher"
VERSION = 1
MEMBERS = (
    "meta.json",
    "pair_model.skops",
    "set_model.skops",
    "observations.parquet",
    "habits.parquet",
)
# Types skops does not trust by default but a HistGradientBoostingClassifier consists of.
TRUSTED_TYPES = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # reproducible bytes for the same model
# skops reads each array with np.load, which parses the .npy header with ast.literal_eval, and
# CPython 3.11 keeps the AST constructor's recursion counter per interpreter, not per thread: two
# loads at once in one process (the evaluator's threads, a threaded matcher backend) failed once in
# CI with "AST constructor recursion depth mismatch" (python/cpython#106905). A load takes tens of
# milliseconds and happens once per model version, so one lock costs nothing that matters.
_SKOPS_LOCK = threading.Lock()


@dataclass
class MatcherParts:
    """What a model file holds: `TrainedMatcher`'s constructor arguments, in that order.

    `TrainedMatcher.to_bytes` and `from_bytes` go through this record, so the file format needs
    nothing of the matcher itself (and the matcher imports this module, not the reverse).
    """

    config: MatcherConfig
    pair_model: HistGradientBoostingClassifier
    set_model: HistGradientBoostingClassifier
    threshold: float
    observations: pd.DataFrame
    training_metrics: dict[str, float]
    habits: pd.DataFrame


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dump_matcher(m: MatcherParts) -> bytes:
    """Serialise a matcher's parts (see module docstring for the layout)."""
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "config": m.config.to_dict(),
        "threshold": m.threshold,
        "training_metrics": m.training_metrics,
        "pair_features": FEATURES,
        "set_features": SET_FEATURES,
        "sklearn_version": sklearn.__version__,
    }
    buf = io.BytesIO()
    m.observations[OBS_COLUMNS].astype(str).to_parquet(buf, index=False)
    hbuf = io.BytesIO()
    m.habits[HABIT_COLUMNS].astype(str).to_parquet(hbuf, index=False)
    members = {
        "meta.json": json.dumps(meta, sort_keys=True, indent=1).encode(),
        "pair_model.skops": sio.dumps(m.pair_model),
        "set_model.skops": sio.dumps(m.set_model),
        "observations.parquet": buf.getvalue(),
        "habits.parquet": hbuf.getvalue(),
    }
    manifest = {"format": FORMAT, "files": {k: _sha(v) for k, v in members.items()}}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in [("manifest.json", json.dumps(manifest).encode()), *members.items()]:
            z.writestr(zipfile.ZipInfo(name, date_time=_FIXED_TIME), data)
    return out.getvalue()


def _audited_load(data: bytes, name: str) -> object:
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as e:
        raise ValueError(f"{name}: not a readable skops file ({e})") from e
    unexpected = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if unexpected:
        raise ValueError(f"{name}: refuses to load untrusted types {unexpected}")
    try:
        return sio.loads(data, trusted=TRUSTED_TYPES)
    except Exception as e:
        raise ValueError(f"{name}: skops could not load it ({e})") from e


def _load_estimator(data: bytes, name: str, n_features: int) -> HistGradientBoostingClassifier:
    with _SKOPS_LOCK:
        est = _audited_load(data, name)
    if not isinstance(est, HistGradientBoostingClassifier):
        raise ValueError(f"{name}: expected a HistGradientBoostingClassifier, got {type(est)}")
    if getattr(est, "n_features_in_", None) != n_features:
        raise ValueError(f"{name}: expects {est.n_features_in_} features, not {n_features}")
    return est


def load_matcher(data: bytes) -> MatcherParts:
    """Deserialise bytes written by dump_matcher; ValueError on anything unexpected."""
    if not isinstance(data, bytes | bytearray):
        raise ValueError("a matcher must be loaded from bytes")
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        names = set(z.namelist())
        expected = {"manifest.json", *MEMBERS}
        if names != expected:
            raise ValueError(f"unexpected archive members {sorted(names ^ expected)}")
        manifest = json.loads(z.read("manifest.json"))
        blobs = {name: z.read(name) for name in MEMBERS}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, KeyError, EOFError) as e:
        raise ValueError(f"not a cashmatch matcher archive ({e})") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"corrupt manifest ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError("not a cashmatch matcher archive (wrong manifest)")
    digests = manifest.get("files", {})
    for name, blob in blobs.items():
        if digests.get(name) != _sha(blob):
            raise ValueError(f"{name} does not match its digest: the file was altered or corrupted")
    try:
        meta = json.loads(blobs["meta.json"])
    except json.JSONDecodeError as e:
        raise ValueError(f"corrupt metadata ({e})") from e
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"unsupported matcher format {meta.get('format')} v{meta.get('version')}")
    if meta.get("pair_features") != FEATURES or meta.get("set_features") != SET_FEATURES:
        raise ValueError("the model was trained with other features than this code computes")
    try:
        config = MatcherConfig.from_dict(meta["config"])
        threshold = float(meta["threshold"])
        metrics = {str(k): float(v) for k, v in meta["training_metrics"].items()}
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"invalid metadata ({e})") from e
    pair_model = _load_estimator(blobs["pair_model.skops"], "pair_model", len(FEATURES))
    set_model = _load_estimator(blobs["set_model.skops"], "set_model", len(SET_FEATURES))
    obs = _read_table(blobs["observations.parquet"], "observations", OBS_COLUMNS).astype(object)
    habits = _read_table(blobs["habits.parquet"], "habits", HABIT_COLUMNS)
    try:
        habits = habits.astype(object).astype({"rank_old": "int64", "rank_new": "int64"})
    except (TypeError, ValueError) as e:
        raise ValueError(f"habits: ranks are not integers ({e})") from e
    return MatcherParts(config, pair_model, set_model, threshold, obs, metrics, habits)


def _read_table(blob: bytes, name: str, columns: list[str]) -> pd.DataFrame:
    try:
        df = pd.read_parquet(io.BytesIO(blob))
    except Exception as e:
        raise ValueError(f"{name}: unreadable parquet ({e})") from e
    if list(df.columns) != columns:
        raise ValueError(f"{name}: unexpected columns {list(df.columns)}")
    return df
