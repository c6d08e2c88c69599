"""What the CLI prints, for people and for programs: off a terminal nothing is wrapped (however
long the paths); at a narrow terminal lines fit and break between words."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.cells import cell_len

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


def test_an_error_at_a_narrow_terminal_wraps_between_words_only(tmp_path):
    precious = _someone_s_folder(tmp_path)
    done = cashmatch("demo", "--workspace", str(precious), "--serving", "none", terminal=True)
    assert done.returncode == 2
    lines = screen(done.stderr.rstrip("\n"))
    assert all(cell_len(line) <= 80 for line in lines), lines
    assert ERROR in " ".join(line.strip() for line in lines)
