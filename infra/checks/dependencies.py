"""What each image installs: the locked dependency set of every workspace member.

`uv export --frozen --no-dev --package cashmatch-<name>` lists exactly what
`uv sync --locked --no-dev --package ...` installs into that service's image (the Dockerfiles run
the same), so this check needs no Docker: it fails when a service that must stay small would
install Ray, or a service that has no use for it the Vertex AI SDK.
"""

from __future__ import annotations

import re
import shutil
import subprocess  # nosec B404 # one fixed argv of uv, no shell
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from infra.checks import ROOT

# package -> the members that may install it (all others must not)
RESTRICTED: dict[str, set[str]] = {
    "ray": {"matcher"},
    "google-cloud-aiplatform": {"trainer", "evaluator"},
    "duckdb": {"collector", "trainer", "evaluator", "deployer", "monitor", "alerter"},
}
_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)")


@dataclass(frozen=True)
class Member:
    """One deployable of the workspace and what its image installs."""

    name: str
    packages: dict[str, str]  # normalized name -> locked version


def uv_binary() -> str:
    """The uv of this environment (a dev dependency, locked), else the one on PATH."""
    beside = Path(sys.executable).with_name("uv")
    found = str(beside) if beside.is_file() else shutil.which("uv")
    if not found:
        raise FileNotFoundError("uv not found: run `make setup` (uv is a dev dependency)")
    return found


def member_names(root: Path = ROOT) -> list[str]:
    """services/<name>/pyproject.toml, by service name."""
    return sorted(p.parent.name for p in (root / "services").glob("*/pyproject.toml"))


def locked_packages(name: str, root: Path = ROOT) -> dict[str, str]:
    """What `uv sync --locked --no-dev --package cashmatch-<name>` installs, from uv.lock."""
    argv = [
        uv_binary(),
        "export",
        "--frozen",
        "--no-dev",
        "--no-hashes",
        "--no-header",
        "--no-emit-workspace",
        "--package",
        f"cashmatch-{name}",
    ]
    out = subprocess.run(  # noqa: S603 # nosec B603
        argv, cwd=root, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    packages = {}
    for line in out.splitlines():
        match = _REQUIREMENT.match(line)
        if match:
            packages[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return packages


def members(root: Path = ROOT) -> list[Member]:
    """Every member with its locked dependency set."""
    return [Member(n, locked_packages(n, root)) for n in member_names(root)]


def check_dependencies(root: Path = ROOT) -> list[str]:
    """Each service's image installs nothing RESTRICTED to other services; every member
    depends on the library by its workspace source."""
    problems: list[str] = []
    for member in members(root):
        for package, allowed in RESTRICTED.items():
            if package in member.packages and member.name not in allowed:
                problems.append(
                    f"services/{member.name}: its image would install {package} "
                    f"{member.packages[package]} (only {', '.join(sorted(allowed))} may)"
                )
        project = tomllib.loads((root / "services" / member.name / "pyproject.toml").read_text())
        source = project.get("tool", {}).get("uv", {}).get("sources", {}).get("cashmatch", {})
        if source.get("workspace") is not True:
            problems.append(
                f"services/{member.name}/pyproject.toml: cashmatch must come from the "
                "workspace ([tool.uv.sources] cashmatch = { workspace = true })"
            )
    return problems


def report(root: Path = ROOT) -> str:
    """A table of what each image installs (80 columns)."""
    rows = [f"{'member':<10} {'packages':>8}  {'ray':<8} {'vertex ai':<10} {'scikit-learn':<12}"]
    for member in members(root):
        p = member.packages
        rows.append(
            f"{member.name:<10} {len(p):>8}  {p.get('ray', '-'):<8} "
            f"{p.get('google-cloud-aiplatform', '-'):<10} {p.get('scikit-learn', '-'):<12}"
        )
    return "\n".join(rows) + "\n"
