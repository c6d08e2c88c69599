"""Break each promise once and see its test fail: the catalogue is tests/break_checks.toml.

    .venv/bin/python infra/break_check.py [--only NAME ...] [--json]

One check at a time: the file is edited in place (the environment is an editable install of
this checkout, so a copy elsewhere would test the unbroken code), the proving test runs, and the
file is put back byte for byte whatever happens, Ctrl-C included. A check is "caught" when its
proving test fails; "NOT CAUGHT" (the test passed with the promise broken) fails the run.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess  # nosec B404 # runs pytest on test ids from the catalogue
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT / "tests" / "break_checks.toml"


@dataclass(frozen=True)
class Check:
    name: str
    promise: str
    file: str
    find: str
    replace: str
    proves: str
    setup: list[str] = field(default_factory=list)


def load(path: Path = CATALOGUE) -> list[Check]:
    """The catalogue's checks; a malformed entry is an error naming it."""
    raw = tomllib.loads(path.read_text())
    checks = []
    for i, entry in enumerate(raw.get("check", [])):
        try:
            checks.append(Check(**entry))
        except TypeError as exc:
            raise ValueError(
                f"{path.name}: check #{i + 1} ({entry.get('name', '?')}): {exc}"
            ) from exc
    names = [c.name for c in checks]
    if len(set(names)) != len(names):
        raise ValueError(f"{path.name}: check names repeat: {sorted(names)}")
    return checks


def problems(check: Check, root: Path = ROOT) -> list[str]:
    """What makes a check unrunnable: its file, its text, its tests."""
    found = []
    target = root / check.file
    if not target.is_file():
        return [f"{check.name}: {check.file} does not exist"]
    count = target.read_text().count(check.find)
    if count != 1:
        found.append(f"{check.name}: `find` occurs {count} times in {check.file}, not once")
    if check.find == check.replace:
        found.append(f"{check.name}: `replace` equals `find`, nothing would break")
    for node in [check.proves, *check.setup]:
        module, _, test = node.partition("::")
        source = root / module
        if not source.is_file() or not re.search(
            rf"^def {re.escape(test)}\(", source.read_text(), re.M
        ):
            found.append(f"{check.name}: no test {node}")
    return found


def uncommitted(check: Check, root: Path = ROOT) -> bool:
    """Whether the file differs from git's HEAD: restoring it would then hide a person's edit
    in a break, or a commit made during the run would take the break in (it happened once)."""
    done = subprocess.run(  # nosec B603 B607
        ["git", "diff", "--quiet", "HEAD", "--", check.file], cwd=root, capture_output=True
    )
    return done.returncode == 1


def run(check: Check, root: Path = ROOT) -> dict:
    """Break, test, restore. Its outcome: caught, NOT CAUGHT, or error (with the reason).
    Do not commit while it runs: the broken file is in the working tree meanwhile."""
    target = root / check.file
    original = target.read_bytes()
    started = time.monotonic()
    try:
        target.write_text(original.decode().replace(check.find, check.replace, 1))
        done = subprocess.run(  # nosec B603
            [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider",
             *check.setup, check.proves],
            cwd=root, capture_output=True, text=True,
        )  # fmt: skip
    finally:
        target.write_bytes(original)
    failed = set(re.findall(r"^FAILED (\S+?)(?:\[| |$)", done.stdout, re.M))
    # An ERROR (a fixture that broke) is not the promise's test failing: not counted as caught.
    if check.proves in failed:
        outcome, reason = "caught", ""
    elif done.returncode == 0:
        outcome, reason = "NOT CAUGHT", "the proving test passed with the promise broken"
    else:
        outcome = "error"
        reason = (
            f"pytest exit {done.returncode}, the proving test did not fail: {done.stdout[-300:]}"
        )
    return {
        "name": check.name,
        "proves": check.proves,
        "outcome": outcome,
        "reason": reason,
        "seconds": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[], help="check names to run")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args(argv)
    checks = load()
    unknown = set(args.only) - {c.name for c in checks}
    if unknown:
        print(f"break-check: no check named {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    chosen = [c for c in checks if not args.only or c.name in args.only]
    broken = [p for c in chosen for p in problems(c)]
    if broken:
        print("break-check: the catalogue is stale:\n  " + "\n  ".join(broken), file=sys.stderr)
        return 2
    dirty = [c.file for c in chosen if uncommitted(c)]
    if dirty:
        print(
            "break-check: commit or stash these first: " + ", ".join(sorted(set(dirty))),
            file=sys.stderr,
        )
        return 2
    results = []
    for i, check in enumerate(chosen, 1):
        if not args.json:
            print(f"[{i}/{len(chosen)}] {check.name}: {check.promise}", flush=True)
        results.append(run(check))
        if not args.json:
            r = results[-1]
            print(f"        {r['outcome']} in {r['seconds']:.0f}s {r['reason']}", flush=True)
    if args.json:
        print(json.dumps({"checks": results}, indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="break-checks: each promise broken once")
        table.add_column("check", overflow="fold")
        table.add_column("proving test", overflow="fold", max_width=34)
        table.add_column("outcome")
        table.add_column("s", justify="right")
        for r in results:
            table.add_row(
                r["name"], r["proves"].split("::")[-1], r["outcome"], f"{r['seconds']:.0f}"
            )
        Console(width=80).print(table)
    return 0 if all(r["outcome"] == "caught" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
