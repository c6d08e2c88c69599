"""What the CLI prints, for people and for programs: off a terminal nothing is wrapped (however
long the paths), and at an 80-column terminal the demo's month tables fit and keep their words
whole."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.cells import cell_len

from cashmatch.entrypoints.cli import demo, output

pytestmark = pytest.mark.integration
CASHMATCH = str(Path(sys.executable).with_name("cashmatch"))  # the installed console script
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
ERROR = "is not empty and has no .cashmatch-demo, the mark of a folder the demo made"


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
