"""The local stack end to end, through the real `cashmatch` CLI in subprocesses."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.cells import cell_len

pytestmark = pytest.mark.e2e
# The installed console script, exactly as a person runs it (not `python -m`, which would find
# the package from the working directory and hide an import that only the install breaks).
CASHMATCH = str(Path(sys.executable).with_name("cashmatch"))


@pytest.fixture
def cashmatch(tmp_path, small_warehouse):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASHMATCH_")}
    env.update(
        CASHMATCH_WORKSPACE=str(tmp_path / "ws"),
        CASHMATCH_WAREHOUSE=str(small_warehouse),
        CASHMATCH_MIN_BACKOFF_S="0",
        COLUMNS="200",
    )

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [CASHMATCH, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if ok:
            assert done.returncode == 0, done.stdout + done.stderr
        return done

    run.workspace = tmp_path / "ws"  # type: ignore[attr-defined]
    return run


def blobs(workspace: Path) -> Path:
    return workspace / "blobs"


def test_synth_writes_a_contract_warehouse(tmp_path):
    out = tmp_path / "w.duckdb"
    done = subprocess.run(
        [
            CASHMATCH,
            "synth",
            "--months",
            "2",
            "--scale",
            "0.1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert out.is_file()
    assert "2025-02" in done.stdout


def test_months_flow_through_the_chain(cashmatch):
    ws = cashmatch.workspace
    cashmatch("publish", "month.closed", "--month", "2025-03")
    cashmatch("run")

    test_manifest = json.loads((blobs(ws) / "datasets/test/manifest.json").read_text())
    assert test_manifest["months"] == ["2025-01", "2025-02", "2025-03"]
    frozen = {p.name: p.read_bytes() for p in (blobs(ws) / "datasets/test").glob("*.parquet")}
    models = json.loads(cashmatch("models", "--json").stdout)
    assert len(models) == 1
    first = models[0]
    assert first["training_months"] == ["2025-01", "2025-02", "2025-03"]
    assert first["champion"] and first["deployed"]

    cashmatch("publish", "month.closed", "--month", "2025-04")
    cashmatch("run")
    models = json.loads(cashmatch("models", "--json").stdout)
    assert len(models) == 2
    assert models[1]["training_months"] == ["2025-01", "2025-02", "2025-03", "2025-04"]
    (champion,) = [m["version"] for m in models if m["champion"]]
    # the test set is frozen: byte for byte what the first run wrote
    assert frozen == {
        p.name: p.read_bytes() for p in (blobs(ws) / "datasets/test").glob("*.parquet")
    }
    manifest_04 = json.loads((blobs(ws) / "datasets/manifests/2025-04.json").read_text())
    assert manifest_04["test_set_version"] == test_manifest["version"]

    # Every verdict is recorded with its reasons; the chain's events all reached "done".
    assert all(m["verdict"] in {"passed", "rejected"} for m in models)
    log = json.loads(cashmatch("events", "--json", "--limit", "100").stdout)
    states = {(r["topic"], r["state"]) for r in log}
    for topic in ("month.closed", "dataset.ready", "model.trained"):
        assert (topic, "done") in states
    assert not any(r["state"] == "dead" for r in log)

    # Republishing month.closed redoes the step: same dataset, same model, nothing new.
    month_closed = next(
        r for r in log if r["topic"] == "month.closed" and r["attributes"]["month"] == "2025-04"
    )
    slice_before = (blobs(ws) / "datasets/months/2025-04/transfers.parquet").read_bytes()
    cashmatch("republish", month_closed["message_id"])
    out = cashmatch("run").stdout
    assert "already trained" in out
    assert "already judged" in out
    models_after = json.loads(cashmatch("models", "--json").stdout)
    assert len(models_after) == 2
    assert [m["version"] for m in models_after if m["champion"]] == [champion]
    assert (blobs(ws) / "datasets/months/2025-04/transfers.parquet").read_bytes() == slice_before
    assert frozen == {
        p.name: p.read_bytes() for p in (blobs(ws) / "datasets/test").glob("*.parquet")
    }

    # status: the champion's lineage back to its months, the report of every verdict, drift
    status = json.loads(cashmatch("status", "--json").stdout)
    assert status["champion"]["version"] == champion
    assert status["models"] == models_after  # the same objects as `models --json`
    assert status["champion"]["training_months"][0] == "2025-01"
    assert status["test_set"]["months"] == ["2025-01", "2025-02", "2025-03"]
    assert [m["month"] for m in status["months"]] == ["2025-01", "2025-02", "2025-03", "2025-04"]
    for model in status["models"]:
        page = Path(model["report"].removeprefix("file://")).read_text()
        assert "<svg" in page and model["version"] in page
    assert (blobs(ws) / "reports/drift/2025-04.html").is_file()
    assert "champion" in cashmatch("status").stdout


def test_bad_events_are_parked_and_can_be_redriven(cashmatch, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{this is not json")
    cashmatch("publish", "month.closed", "--raw", str(bad))
    cashmatch("publish", "month.closed", "--month", "2019-05")
    cashmatch("publish", "month.closed", "--month", "2030-01")
    cashmatch("run")
    dead = json.loads(cashmatch("dead-letters", "--json").stdout)
    reasons = sorted(d["detail"] for d in dead)
    assert len(dead) == 3
    assert any("not JSON" in r for r in reasons)
    assert any("no transfers booked in 2019-05" in r for r in reasons)
    assert any("2030-01 is not over yet" in r for r in reasons)
    assert all(d["attempts"] == 1 for d in dead)  # parked at once, not retried

    # A month in a bad format is refused at the door with the field named.
    refused = cashmatch("publish", "month.closed", "--month", "2025-3", ok=False)
    assert refused.returncode != 0
    assert "month must look like YYYY-MM" in refused.stdout + refused.stderr

    target = next(d for d in dead if "2019-05" in d["detail"])
    cashmatch("redrive", target["message_id"][:8])  # the start `events` shows will do
    cashmatch("run")
    again = {d["message_id"]: d for d in json.loads(cashmatch("dead-letters", "--json").stdout)}
    # Delivered once more, failed for the same reason and parked again; the others untouched.
    assert len(again) == 3
    redone = again[target["message_id"]]
    assert redone["detail"] == target["detail"] and redone["attempts"] == 1
    at = dt.datetime.fromisoformat
    assert at(redone["updated_at"]) > at(target["updated_at"])
    assert all(again[d["message_id"]] == d for d in dead if d is not target)


def test_a_bad_warehouse_is_named(cashmatch, tmp_path):
    import duckdb

    broken = tmp_path / "broken.duckdb"
    con = duckdb.connect(str(broken))
    con.execute("CREATE TABLE transfers (transfer_id VARCHAR)")
    con.close()
    cashmatch("--warehouse", str(broken), "publish", "month.closed", "--month", "2025-02")
    cashmatch("--warehouse", str(broken), "run")
    dead = json.loads(cashmatch("dead-letters", "--json").stdout)
    assert len(dead) == 1
    assert "missing table 'invoices'" in dead[0]["detail"]
    assert "lacks column(s) booking_date" in dead[0]["detail"]


def test_match_scores_an_unseen_month_into_a_csv(cashmatch, tmp_path, small_warehouse):
    import duckdb
    import pandas as pd

    cashmatch("publish", "month.closed", "--month", "2025-04")
    cashmatch("run")
    out = tmp_path / "predictions.csv"
    cashmatch("match", "--month", "2025-05", "--out", str(out))
    predictions = pd.read_csv(out, dtype={"invoice_id": "string"})
    assert list(predictions.columns) == [
        "transfer_id",
        "invoice_id",
        "amount",
        "confidence",
        "decision",
        "reasons",
        "why",
    ]
    proposed = predictions[predictions["invoice_id"].notna()]
    assert proposed["why"].str.len().gt(0).all()  # every proposal says why
    with duckdb.connect(str(small_warehouse), read_only=True) as con:
        transfers = con.execute(
            "SELECT transfer_id, CAST(amount AS DOUBLE) AS amount FROM transfers "
            "WHERE booking_date >= DATE '2025-05-01' AND booking_date < DATE '2025-06-01'"
        ).df()
        labels = con.execute(
            "SELECT m.transfer_id, m.invoice_id FROM matches m JOIN transfers t USING (transfer_id) "
            "WHERE t.booking_date >= DATE '2025-05-01' AND t.booking_date < DATE '2025-06-01'"
        ).df()
    assert set(predictions["transfer_id"]) == set(transfers["transfer_id"])
    assert set(predictions["decision"]) <= {"auto", "review"}
    # a transfer predicted to pay nothing has exactly one row, with an empty invoice_id
    empty = predictions[predictions["invoice_id"].isna()]
    assert not empty["transfer_id"].duplicated().any()
    assert not set(empty["transfer_id"]) & set(
        predictions.dropna(subset=["invoice_id"])["transfer_id"]
    )
    # allocations never exceed the transfer amount
    allocated = predictions.groupby("transfer_id")["amount"].sum()
    amounts = transfers.set_index("transfer_id")["amount"]
    assert (allocated <= amounts.reindex(allocated.index) + 0.01).all()
    # and they are mostly right: the month was never seen in training
    truth = labels.groupby("transfer_id")["invoice_id"].apply(frozenset)
    guess = (
        predictions.dropna(subset=["invoice_id"])
        .groupby("transfer_id")["invoice_id"]
        .apply(frozenset)
    )
    exact = [
        truth.get(t, frozenset()) == guess.get(t, frozenset()) for t in transfers["transfer_id"]
    ]
    assert sum(exact) / len(exact) > 0.85


def test_match_without_a_model_says_so(cashmatch, tmp_path):
    done = cashmatch("match", "--month", "2025-05", "--out", str(tmp_path / "p.csv"), ok=False)
    assert done.returncode == 1
    assert "no deployed model yet" in done.stderr


def _screen(text: str) -> list[str]:
    """The lines a terminal shows: what each line's last carriage return left, no escapes."""
    return [
        re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", line.split("\r")[-1]) for line in text.split("\n")
    ]


def test_the_demo_runs_the_chain_and_replaces_its_own_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASHMATCH_")}
    env.pop("FORCE_COLOR", None)
    env.pop("TTY_COMPATIBLE", None)
    env["COLUMNS"] = "80"
    folder = tmp_path / ("a-long-folder-name/" * 8) / "demo"  # paths wider than the terminal
    demo = [CASHMATCH, "demo", "--workspace", str(folder), "--months", "4", "--scale", "0.3"]
    # First at an 80-column terminal, then into a pipe; the second run replaces the first's folder.
    for at_a_terminal in (True, False):
        done = subprocess.run(
            [*demo, "--serving", "none"],
            env={**env, "FORCE_COLOR": "1"} if at_a_terminal else env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        lines = _screen(done.stdout)
        rows = [line for line in lines if line.startswith("│")]
        # two month tables and the republish table, one line per row: no cell wrapped
        assert [r.split("│")[1].strip() for r in rows[:4]] == ["2025-03", "2025-04"] * 2
        assert all(r.split("│")[7].strip() in {"passed", "rejected"} for r in rows[:2])
        if at_a_terminal:
            assert all(cell_len(line) <= 80 for line in lines), "\n".join(lines)
    versions = [r.split("│")[6].strip() for r in rows[:2]]
    assert all(len(v) == 8 and v.startswith("m-") for v in versions)  # short ids in the table
    # into a pipe every line is whole, however long: the verdicts name the versions in full
    assert sum(1 for line in lines if line.startswith(("2025-03 m-", "2025-04 m-"))) == 2
    assert "republished month.closed 2025-04: 0 new model versions" in lines
    assert any(line.startswith(f"dead letters: 0; workspace {folder}/workspace;") for line in lines)
    # the console's URL beside the matcher's, with the command that starts it
    token = (folder / "workspace" / "console" / "token").read_text().strip()
    assert any(f"http://127.0.0.1:8765/?token={token}" in line for line in lines), lines
    assert any(
        f"--workspace {folder}/workspace" in line
        and line.rstrip().endswith("ui (Ctrl-C stops it) │")
        for line in lines
    ), lines
    reports = folder / "workspace" / "blobs" / "reports"
    assert len(list((reports / "evaluations").glob("*.html"))) == 2
    assert sorted(p.name for p in folder.iterdir()) == [
        ".cashmatch-demo",
        "warehouse.duckdb",
        "workspace",
    ]
