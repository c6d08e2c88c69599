"""What each image installs: the locked dependency set of every workspace member.

`uv export --frozen --no-dev --package cashmatch-<name>` lists exactly what
`uv sync --locked --no-dev --package ...` installs into that service's image (the Dockerfiles run
the same), so this check needs no Docker: it fails when a service that must stay small would
install Ray, or a service that has no use for it the Vertex AI SDK.
"""

from __future__ import annotations

import os
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
    "duckdb": {"collector", "trainer", "evaluator", "deployer", "monitor", "alerter", "console"},
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


def sync_member(name: str, env_dir: Path, root: Path = ROOT) -> Path:
    """A fresh environment at `env_dir` with `cashmatch-<name>` alone, as its image installs
    it (`uv sync --locked --no-dev --package ...`); returns its python."""
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(env_dir)}
    env.pop("VIRTUAL_ENV", None)
    argv = [
        uv_binary(),
        "sync",
        "--locked",
        "--no-dev",
        "--quiet",
        "--package",
        f"cashmatch-{name}",
    ]
    subprocess.run(argv, cwd=root, env=env, check=True, timeout=900)  # noqa: S603 # nosec B603
    return env_dir / "bin" / "python"


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
    return problems + check_python_range(root) + check_serving_ray(root)


def check_serving_ray(root: Path = ROOT) -> list[str]:
    """The matcher image's base (rayproject/ray:X) is the Ray the lock installs in it: KubeRay
    starts the base's `ray` while the Serve app imports the lock's."""
    dockerfile = (root / "infra" / "serving.Dockerfile").read_text()
    base = re.search(r"^FROM\s+rayproject/ray:(\d+\.\d+\.\d+)", dockerfile, re.MULTILINE)
    locked = locked_packages("matcher", root).get("ray")
    if base is None or locked is None:
        return [f"infra/serving.Dockerfile: base Ray {base and base.group(1)}, locked {locked}"]
    if base.group(1) != locked:
        return [
            f"infra/serving.Dockerfile builds on Ray {base.group(1)} but uv.lock installs "
            f"{locked} in the matcher's image"
        ]
    return []


def _minors(spec: str) -> tuple[int, int]:
    """(lowest, first excluded) minor of a `>=3.X,<3.Y` requires-python."""
    low = re.search(r">=\s*3\.(\d+)", spec)
    high = re.search(r"<\s*3\.(\d+)", spec)
    if not low or not high:
        raise ValueError(f"requires-python {spec!r} is not of the form >=3.X,<3.Y")
    return int(low.group(1)), int(high.group(1))


def unsupported(lock: dict, minor: int) -> list[str]:
    """Locked packages with neither an sdist nor a wheel this CPython (3.minor) can install."""
    tag = f"-cp3{minor}-"
    missing = []
    for package in lock["package"]:
        names = [w["url"].rsplit("/", 1)[1] for w in package.get("wheels", [])]
        if not names or package.get("sdist"):
            continue
        if all("-win" in n for n in names):  # Windows-only (pywin32): never on our images
            continue
        if not any(tag in n or "-py3-none-" in n or "-abi3-" in n for n in names):
            missing.append(str(package["name"]))
    return missing


def check_python_range(root: Path = ROOT) -> list[str]:
    """The declared Python range is exactly what the lock can install: every version in it has
    a wheel (or an sdist) of every locked package, and the next version up does not."""
    spec = tomllib.loads((root / "pyproject.toml").read_text())["project"]["requires-python"]
    lock = tomllib.loads((root / "uv.lock").read_text())
    low, high = _minors(spec)
    problems = [
        f"requires-python {spec}: the lock cannot install {', '.join(missing)} on 3.{minor}"
        for minor in range(low, high)
        if (missing := unsupported(lock, minor))
    ]
    if not unsupported(lock, high):
        problems.append(f"requires-python {spec}: the lock also installs on 3.{high}; widen it")
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
