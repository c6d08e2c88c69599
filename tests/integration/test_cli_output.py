"""What the CLI prints, for people and for programs: off a terminal nothing is wrapped (however
long the paths), at an 80-column terminal the demo's month tables fit and keep their words whole,
and `--json` is JSON alone on stdout, with the documented fields and whole ids."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from rich.cells import cell_len

from cashmatch.entrypoints.cli import demo, output

pytestmark = pytest.mark.integration
CASHMATCH = str(Path(sys.executable).with_name("cashmatch"))  # the installed console script
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
ERROR = "is not empty and has no .cashmatch-demo, the mark of a folder the demo made"

DELIVERY = {
    "message_id",
    "topic",
    "month",
    "subscription",
    "state",
    "attempts",
    "detail",
    "published_at",
    "updated_at",
    "attributes",
}
MODEL = {
    "version",
    "dataset_version",
    "training_months",
    "artifact_digest",
    "verdict",
    "why",
    "reasons",
    "auto_rate@99",
    "exact_set_accuracy",
    "rules_auto_rate@99",
    "report",
    "champion",
    "deployed",
    "endpoint",
}


def screen(text: str) -> list[str]:
    """The lines a terminal shows of `text`: what the last carriage return of each left (a
    progress bar redraws its line), without escape codes."""
    return [ESCAPE.sub("", line.split("\r")[-1]).rstrip() for line in text.split("\n")]


def cashmatch(*args: str, terminal: bool = False, **env: str) -> subprocess.CompletedProcess:
    """Run the CLI with stdout and stderr to pipes; `terminal` makes it believe both are an
    80-column terminal (rich's FORCE_COLOR), as a person's narrow window is."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CASHMATCH_") and k not in {"FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR"}
    }
    # COLUMNS=80 either way: CI runners set it, and off a terminal it must not matter.
    clean.update(COLUMNS="80", **env)
    if terminal:
        clean["FORCE_COLOR"] = "1"
    return subprocess.run(
        [CASHMATCH, *args], env=clean, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture
def long_dir(tmp_path: Path) -> Path:
    """A folder whose path is 150 characters or more, much wider than any default terminal."""
    path = tmp_path
    while len(str(path)) < 150:
        path = path / "a-folder-with-a-rather-long-name"
    path.mkdir(parents=True)
    return path


def _someone_s_folder(parent: Path) -> Path:
    precious = parent / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    return precious


def test_an_error_through_a_pipe_is_one_whole_line(long_dir):
    precious = _someone_s_folder(long_dir)
    done = cashmatch("demo", "--workspace", str(precious), "--serving", "none")
    assert done.returncode == 2, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert f"error: {precious} {ERROR}" in line
    assert "\x1b[" not in done.stderr  # no colour codes in a log either


def test_a_usage_error_through_a_pipe_is_one_whole_line(long_dir):
    missing = long_dir / "missing" / "predictions.csv"
    done = cashmatch("match", "--month", "2025-04", "--out", str(missing))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert f"error: Invalid value for --out: {missing.parent} is not a folder" in lines
    assert "Usage: cashmatch match [OPTIONS]" in lines


def test_an_error_at_a_narrow_terminal_wraps_between_words_only(tmp_path):
    precious = _someone_s_folder(tmp_path)
    done = cashmatch("demo", "--workspace", str(precious), "--serving", "none", terminal=True)
    assert done.returncode == 2
    lines = screen(done.stderr.rstrip("\n"))
    assert all(cell_len(line) <= 80 for line in lines), lines
    assert ERROR in " ".join(line.strip() for line in lines)


def _facts(months: int) -> list[dict]:
    """What `demo` shows of `months` closed months, with ids and numbers as wide as real ones."""
    facts = []
    for i in range(months):
        month = f"2025-{i + 3:02d}"
        facts.append(
            {
                "month": month,
                "train": 2744 + 1540 * i,
                "test": 670,
                "new": 1232 + i,
                "quarantined": i % 3,
                "candidate": f"m-{i:02d}3824c2afe7",
                "verdict": "rejected" if i % 2 else "passed",
                "deployed": f"m-{i - i % 2:02d}3824c2afe7",
                "auto_rate": 0.951 + i / 1000,
                "exact": 0.9687,
                "champion": f"m-{i - 1 - (i - 1) % 2:02d}3824c2afe7" if i else None,
                "champion_auto_rate": 0.9507 if i else None,
                "champion_new_month": 0.968 if i else None,
                "rules_auto_rate": 0.555,
                "reasons": [f"reason {i}: auto_rate@99 0.9687 vs champion 0.9507", "guard x"],
            }
        )
    facts.append({**dict.fromkeys(facts[0]), "month": "2025-11", "verdict": "failed"})
    return facts


def _month_tables(lines: list[str]) -> list[list[str]]:
    """The body rows of each table, as lists of cells."""
    tables: list[list[list[str]]] = []
    inside = False
    for line in lines:
        if line.startswith("┡"):
            tables.append([])
            inside = True
        elif line.startswith("└"):
            inside = False
        elif inside:
            tables[-1].append([cell.strip() for cell in line.strip("│").split("│")])
    return tables


@pytest.mark.parametrize("terminal", [True, False], ids=["80-column terminal", "pipe"])
def test_the_demo_month_tables_keep_every_cell_whole(terminal, monkeypatch):
    facts = _facts(8)
    printed = io.StringIO()
    console = output.make_console(file=printed, force_terminal=terminal, width=80)
    monkeypatch.setattr(output, "console", console)
    demo.show_months(facts)
    lines = screen(printed.getvalue())
    if terminal:
        assert all(cell_len(line) <= 80 for line in lines), "\n".join(lines)
    chain, scores = _month_tables(lines)
    months = [f["month"] for f in facts]
    # one line per month in each table: no cell wrapped onto a second line
    assert [row[0] for row in chain] == months
    assert [row[0] for row in scores] == months
    for fact, row in zip(facts, chain, strict=True):
        assert row[5] == (fact["candidate"] or "–")[:8]
        assert row[6] == fact["verdict"]
        assert row[7] == (fact["deployed"] or "–")[:8]
    assert [row[1] for row in scores] == [f"{0.951 + i / 1000:.3f}" for i in range(8)] + ["–"]
    assert [row[4] for row in scores] == ["–"] + ["0.951"] * 7 + ["–"]
    # every fact of the old 14-column table is still shown, the ids whole under the tables
    headers = " ".join(lines[: lines.index(next(x for x in lines if x.startswith("┡")))])
    for word in ("month", "train", "test", "new", "quar.", "candidate", "verdict", "deployed"):
        assert word in headers
    assert "rules" in printed.getvalue() and "new month" in printed.getvalue()
    for fact in facts[:-1]:
        assert f"{fact['month']} {fact['candidate']} {fact['verdict']}: reason" in "\n".join(lines)
    assert "2025-11 failed: see `cashmatch events`" in lines
    if not terminal:  # to a file each of those lines is whole, however long
        for fact in facts[:-1]:
            said = f"{fact['month']} {fact['candidate']} {fact['verdict']}: "
            assert said + "; ".join(fact["reasons"]) in lines


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict[str, str]:
    """A workspace after one close of 2025-03 (with a transfer of it made invalid) and one
    malformed event; the CLI's environment for it."""
    folder = tmp_path_factory.mktemp("chain")
    warehouse = folder / "warehouse.duckdb"
    synth = ["synth", "--months", "4", "--scale", "0.2", "--out", str(warehouse)]
    assert cashmatch(*synth).returncode == 0
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "UPDATE transfers SET currency = 'euro' WHERE transfer_id = (SELECT min(transfer_id) "
            "FROM transfers WHERE booking_date >= DATE '2025-03-01')"
        )
    bad = folder / "bad.json"
    bad.write_text("{not json")
    env = {
        "CASHMATCH_WORKSPACE": str(folder / "ws"),
        "CASHMATCH_WAREHOUSE": str(warehouse),
        "CASHMATCH_MIN_BACKOFF_S": "0",
    }
    for args in (
        ["publish", "month.closed", "--month", "2025-03"],
        ["publish", "month.closed", "--raw", str(bad)],
        ["run"],
    ):
        done = cashmatch(*args, **env)
        assert done.returncode == 0, done.stdout + done.stderr
    return env


def _json(chain: dict[str, str], *args: str) -> object:
    """The command's --json, run at a (pretend) terminal: still JSON alone on stdout."""
    done = cashmatch(*args, "--json", terminal=True, **chain)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # nothing else on stdout, no colour codes


def test_models_json_lists_every_version_with_the_table_fields(chain):
    (model,) = _json(chain, "models")
    assert set(model) == MODEL
    assert re.fullmatch(r"m-[0-9a-f]{12}", model["version"])  # whole, not the table's 8
    assert model["training_months"] == ["2025-01", "2025-02", "2025-03"]
    assert model["champion"] is model["deployed"] is True
    assert model["verdict"] == "passed" and model["why"] == model["reasons"][0]
    assert all(isinstance(model[k], float) for k in ("auto_rate@99", "exact_set_accuracy"))


def test_events_and_dead_letters_json_are_lists_of_deliveries(chain):
    events = _json(chain, "events", "--limit", "100")
    assert events and all(set(e) == DELIVERY for e in events)
    assert {(e["topic"], e["state"]) for e in events} >= {("month.closed", "done")}
    assert all(len(e["message_id"]) == 36 for e in events)  # uuids, whole
    (dead,) = _json(chain, "dead-letters")
    assert set(dead) == DELIVERY
    assert dead["state"] == "dead" and "not JSON" in dead["detail"]
    assert dead["message_id"] in {e["message_id"] for e in events}
    only = _json(chain, "events", "--month", "2025-03", "--state", "done")
    assert only and {(e["month"], e["state"]) for e in only} == {("2025-03", "done")}


def test_quarantine_json_lists_the_rows_set_aside(chain):
    rows = _json(chain, "quarantine", "--month", "2025-03")
    assert rows and all(set(r) == {"month", "table", "key", "reason"} for r in rows)
    (euro,) = [r for r in rows if "currency not ISO 4217" in r["reason"]]
    assert euro["table"] == "transfers" and euro["month"] == "2025-03"


def test_status_json_shows_models_and_events_as_their_own_commands_do(chain):
    status = _json(chain, "status", "--events", "5")
    assert set(status) == {
        "months",
        "test_set",
        "models",
        "champion",
        "champion_history",
        "deployed",
        "promise",
        "events",
        "dead_letters",
    }
    assert status["models"] == _json(chain, "models")
    assert status["promise"]["months"] == _json(chain, "performance")
    assert status["promise"]["target"] == 0.99
    assert len(status["events"]) == 5 and all(set(e) == DELIVERY for e in status["events"])
    assert status["dead_letters"] == 1
    assert status["champion"]["version"] == status["deployed"]["version"]


def test_an_error_of_a_json_command_goes_to_stderr_alone(chain):
    done = cashmatch("quarantine", "--month", "2025-04", "--json", **chain)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip() == "error: month 2025-04 has not been collected"


def test_a_table_too_wide_for_the_terminal_becomes_one_block_per_row(monkeypatch):
    """At 80 columns a wide table (`models`, `events`) is not squeezed into cut ids: each row
    is a block, every id and path whole on its line; through a pipe it stays a table."""
    columns = ["version", "dataset", "months", "verdict", "report"]
    row = [
        "m-403824c2afe7",
        "ds-2025-03-a3ec0df40a9b",
        "2025-01..2025-03",
        "passed",
        "file:///tmp/ws/blobs/reports/evaluations/m-403824c2afe7.html",
    ]
    for terminal in (True, False):
        printed = io.StringIO()
        console = output.make_console(file=printed, force_terminal=terminal, width=80)
        monkeypatch.setattr(output, "console", console)
        output.table("models", columns, [row, row])
        lines = screen(printed.getvalue())
        if terminal:
            assert all(cell_len(line) <= 80 for line in lines), "\n".join(lines)
            assert lines.count("version m-403824c2afe7") == 2
            for value in row[1:]:
                assert sum(value in line for line in lines) == 2, value
        else:
            assert sum("│ m-403824c2afe7 │" in line and row[4] in line for line in lines) == 2
