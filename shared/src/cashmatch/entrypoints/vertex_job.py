"""The Vertex AI custom job's entry point: train one candidate, leave it in the bucket.

    python -m cashmatch.entrypoints.vertex_job --dataset-uri gs://... --dataset-version ds-... \
        --model-version m-...

The trainer service submits this (adapters/gcp/vertex_training.py) with the same
CASHMATCH_* settings it runs with, waits for the job, and registers the version from what the
job wrote: the artifact and, last, its result (digest, metrics) through the very function the
in-process path uses (`train_and_store`). The job needs only the blob store: no bus, no
warehouse, no registry. Exit status 0 when trained (or already trained), 2 for a problem no
retry can fix (one line on the log says which), 1 for anything else.
"""

from __future__ import annotations

import argparse
import logging
import sys

from cashmatch.bootstrap import build_blob_store
from cashmatch.domain.errors import PermanentError
from cashmatch.domain.matching import MatcherConfig
from cashmatch.service_layer.dataset_store import DatasetStore
from cashmatch.service_layer.training import model_version, train_and_store
from cashmatch.settings import SettingsError, load_settings

log = logging.getLogger("cashmatch.trainer.job")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The job's three arguments, all required."""
    parser = argparse.ArgumentParser(prog="python -m cashmatch.entrypoints.vertex_job")
    parser.add_argument("--dataset-uri", required=True, help="manifest URI of the dataset")
    parser.add_argument("--dataset-version", required=True, help="the version the event named")
    parser.add_argument("--model-version", required=True, help="the version to produce")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Train the candidate the arguments name; see the module docstring for exit codes."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = MatcherConfig()
    expected = model_version(args.dataset_version, config)
    if expected != args.model_version:
        # The submitting trainer and this image disagree on the trainer's code or config:
        # training would register bytes under a version that does not describe them.
        log.error(
            "this image trains %s into %s, not %s: the job's image is not the trainer's",
            args.dataset_version,
            expected,
            args.model_version,
        )
        return 2
    try:
        blobs = build_blob_store(load_settings())
        result = train_and_store(
            blobs,
            DatasetStore(blobs),
            dataset_uri=args.dataset_uri,
            dataset_version=args.dataset_version,
            version=args.model_version,
            config=config,
        )
    except (PermanentError, SettingsError) as exc:
        log.error("cannot train %s: %s", args.model_version, exc)
        return 2
    log.info(
        "trained %s on %d months; artifact %s sha256 %s",
        result.model_version,
        len(result.training_months),
        result.artifact_key,
        result.artifact_digest,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
