"""infra/break_check.py and its catalogue: every check still points at text and tests that
exist, a break the test notices is "caught", one it does not is "NOT CAUGHT", and the broken
file is put back byte for byte either way."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _runner():
    spec = importlib.util.spec_from_file_location("break_check", ROOT / "infra" / "break_check.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["break_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_check_of_the_catalogue_can_run():
    runner = _runner()
    checks = runner.load()
    assert len(checks) >= 8
    assert [p for c in checks for p in runner.problems(c)] == []


def _toy(tmp_path: Path) -> Path:
    (tmp_path / "toy.py").write_text("def answer():\n    return 42  # the answer\n")
    (tmp_path / "test_toy.py").write_text(
        textwrap.dedent(
            """
            import sys
            sys.path.insert(0, __file__.rsplit("/", 1)[0])
            import toy

            def test_the_answer():
                assert toy.answer() == 42
            """
        )
    )
    return tmp_path


def test_a_break_the_test_notices_is_caught_and_the_file_restored(tmp_path):
    runner = _runner()
    root = _toy(tmp_path)
    before = (root / "toy.py").read_bytes()
    check = runner.Check(
        name="toy", promise="the answer is 42", file="toy.py", find="return 42",
        replace="return 41", proves="test_toy.py::test_the_answer",
    )  # fmt: skip
    assert runner.problems(check, root) == []
    assert runner.run(check, root)["outcome"] == "caught"
    assert (root / "toy.py").read_bytes() == before


def test_a_break_the_test_misses_is_not_caught(tmp_path):
    runner = _runner()
    root = _toy(tmp_path)
    check = runner.Check(
        name="comment", promise="-", file="toy.py", find="# the answer",
        replace="# another answer", proves="test_toy.py::test_the_answer",
    )  # fmt: skip
    assert runner.run(check, root)["outcome"] == "NOT CAUGHT"
    assert "the answer" in (root / "toy.py").read_text()


def test_a_stale_check_is_named_with_what_is_wrong(tmp_path):
    runner = _runner()
    root = _toy(tmp_path)
    stale = runner.Check(
        name="stale", promise="-", file="toy.py", find="return 7", replace="return 8",
        proves="test_toy.py::test_gone",
    )  # fmt: skip
    found = runner.problems(stale, root)
    assert any("occurs 0 times" in p for p in found)
    assert any("no test test_toy.py::test_gone" in p for p in found)
