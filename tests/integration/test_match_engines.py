"""`cashmatch match` chunk by chunk: the Ray engine writes the default engine's CSV, and a
failing chunk is reported by its key with nothing written."""

from __future__ import annotations

import sys

import pytest

from cashmatch.bootstrap import bootstrap
from cashmatch.domain.matching import MatcherConfig, TrainedMatcher, month_batches, train_matcher
from cashmatch.domain.matching.toydata import toy_data
from cashmatch.entrypoints.cli.main import main
from cashmatch.settings import load_settings
from tests.fakes.models import register_artifact

pytestmark = pytest.mark.integration
MONTH = "2025-04"


@pytest.fixture(scope="module")
def world(small_warehouse, tmp_path_factory):
    """A workspace whose registry holds a small model (trained on toy data: any model reads a
    contract warehouse) and the session's small warehouse."""
    root = tmp_path_factory.mktemp("engines")
    ports = bootstrap(load_settings(workspace=root / "ws", warehouse=str(small_warehouse)))
    d = toy_data(n_months=4, per_month=150, n_counterparties=50, seed=3)
    model = train_matcher(month_batches(d.invoices, d.transfers, d.matches), MatcherConfig(seed=0))
    register_artifact(ports.registry, "v-small", model.to_bytes())
    return root / "ws", small_warehouse


def _match(world, monkeypatch, capsys, out, *options: str) -> tuple[int, str]:
    """`cashmatch match` of MONTH in-process; `out` None: to the blob store (--to-bucket)."""
    workspace, warehouse = world
    monkeypatch.setenv("COLUMNS", "80")
    # a few days a chunk: the small month (some 350 transfers) is cut into several
    monkeypatch.setenv("CASHMATCH_MATCH_CHUNK", "60")
    args = ["--workspace", str(workspace), "--warehouse", str(warehouse), "match"]
    args += ["--month", MONTH, "--version", "v-small", *options]
    args += ["--to-bucket"] if out is None else ["--out", str(out)]
    monkeypatch.setattr(sys, "argv", ["cashmatch", *args])
    with pytest.raises(SystemExit) as ended:
        main()
    printed = capsys.readouterr()
    return ended.value.code, printed.out + printed.err


def test_the_ray_engine_writes_the_default_engines_csv(world, tmp_path, monkeypatch, capsys):
    import cashmatch.adapters.ray_chunks as ray_chunks

    code, said = _match(world, monkeypatch, capsys, tmp_path / "local.csv")
    assert code == 0, said
    submitted: list[str] = []  # the chunks' keys, as they go to Ray tasks
    task = ray_chunks._first_pass

    class Spy:
        def remote(self, model, plan, chunk):
            submitted.append(chunk.key)
            return task.remote(model, plan, chunk)

    monkeypatch.setattr(ray_chunks, "_first_pass", Spy())
    code, said = _match(
        world, monkeypatch, capsys, tmp_path / "ray.csv", "--engine", "ray", "--workers", "2"
    )
    assert code == 0, said
    local = (tmp_path / "local.csv").read_bytes()
    assert local.count(b"\n") > 300
    assert len(submitted) > 3 and submitted == sorted(submitted)
    assert (tmp_path / "ray.csv").read_bytes() == local


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_a_failing_chunk_is_named_and_nothing_is_written(
    world, tmp_path, monkeypatch, capsys, engine
):
    """A chunk that raises (here: its third day of a bad input) fails the month by its key."""
    real = TrainedMatcher.settle_chunk
    calls = {"n": 0}

    def third_fails(self, f, books):
        calls["n"] += 1
        if calls["n"] == 3:
            raise ValueError("amount of transfer T-bad is not a number")
        return real(self, f, books)

    monkeypatch.setattr(TrainedMatcher, "settle_chunk", third_fails)
    out = tmp_path / "p.csv"
    code, said = _match(world, monkeypatch, capsys, out, "--engine", engine)
    assert code == 1
    assert "chunk 2025-04-" in said and "failed" in said and "T-bad" in said, said
    assert not out.exists() and not list(tmp_path.iterdir())


def test_to_bucket_puts_the_same_csv_in_the_blob_store(world, tmp_path, monkeypatch, capsys):
    code, said = _match(world, monkeypatch, capsys, tmp_path / "local.csv")
    assert code == 0, said
    code, said = _match(world, monkeypatch, capsys, None)
    assert code == 0, said
    ports = bootstrap(load_settings(workspace=world[0], warehouse=str(world[1])))
    blob = ports.blobs.get(f"predictions/{MONTH}/v-small.csv")
    assert blob.data == (tmp_path / "local.csv").read_bytes()
