"""The Dockerfiles: one per service (services/<name>/Dockerfile) whose CMD serves that service's
`handle`, all alike but for the name, COPY sources present and not dockerignored, the services
agreeing with the Terraform's, every one built by infra/cloudbuild-services.yaml.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from infra.checks import ROOT
from infra.checks.terraform import load_terraform


@dataclass
class Instruction:
    """One Dockerfile instruction with its continuation lines joined."""

    line: int
    keyword: str
    args: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order; comments (also inside continuations) and blank lines dropped."""
    found: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        found.append(Instruction(start, keyword.upper(), args.strip()))
        pending = ""
    return found


def _dockerignore(root: Path) -> list[str]:
    path = root / ".dockerignore"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves `path` out (the last matching pattern decides)."""
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        cleaned = pattern.lstrip("!").strip().strip("/")
        if fnmatch.fnmatch(path, cleaned) or path.startswith(cleaned + "/"):
            ignored = not negated
    return ignored


def _copy_sources(args: str) -> list[str] | None:
    """The source paths of a COPY/ADD from the build context (None for COPY --from=...)."""
    words = json.loads(args) if args.startswith("[") else args.split()
    if any(w.startswith("--from=") for w in words):
        return None
    words = [w for w in words if not w.startswith("--")]
    return [str(w) for w in words[:-1]]


def check_dockerfile_sources(path: Path, root: Path, ignore: list[str]) -> list[str]:
    """Every COPY/ADD source exists in the repository and is in the build context."""
    where = str(path.relative_to(root))
    problems: list[str] = []
    for instr in parse_dockerfile(path.read_text()):
        if instr.keyword not in ("COPY", "ADD"):
            continue
        sources = _copy_sources(instr.args)
        if sources is None:
            continue
        matched = 0
        for source in sources:
            paths = (
                sorted(root.glob(source)) if any(c in source for c in "*?[") else [root / source]
            )
            present = [p for p in paths if p.exists()]
            if not present and not any(c in source for c in "*?["):
                problems.append(f"{where}:{instr.line}: COPY source {source!r} is not in the repo")
            for found in present:
                rel = str(found.relative_to(root))
                if dockerignored(rel, ignore):
                    problems.append(
                        f"{where}:{instr.line}: COPY source {rel!r} is in .dockerignore"
                    )
            matched += len(present)
        if not matched:
            problems.append(f"{where}:{instr.line}: no COPY source matches anything")
    return problems


def _options(argv: list[str]) -> dict[str, str]:
    """--key=value and --key value pairs of a command line."""
    found: dict[str, str] = {}
    for i, word in enumerate(argv):
        if not word.startswith("--"):
            continue
        key, eq, value = word.partition("=")
        if not eq and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            value = argv[i + 1]
        found[key] = value
    return found


def _serves_handle(main: Path) -> bool:
    """main.py defines `handle` decorated with functions_framework.cloud_event."""
    for node in ast.parse(main.read_text()).body:
        if isinstance(node, ast.FunctionDef) and node.name == "handle":
            return any(
                isinstance(d, ast.Attribute) and d.attr == "cloud_event"
                for d in node.decorator_list
            )
    return False


def _string_constants(path: Path) -> set[str]:
    return {
        node.value
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


# Cloud Run services that serve people, not events: a web app (`app` in main.py, served by
# `python services/<name>/main.py`), no push subscription, its own Terraform resource.
WEB_SERVICES = ("console",)


def service_names(root: Path = ROOT) -> list[str]:
    """The event services on Cloud Run: folders of services/ with a main.py, the web services
    left out."""
    return sorted(
        p.parent.name
        for p in (root / "services").glob("*/main.py")
        if p.parent.name not in WEB_SERVICES
    )


def _defines_app(main: Path) -> bool:
    """main.py assigns a module-level `app` and has a main() to serve it."""
    names: set[str] = set()
    for node in ast.parse(main.read_text()).body:
        if isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.FunctionDef):
            names.add(node.name)
    return {"app", "main"} <= names


def check_web_service(name: str, root: Path, tf_dir: Path, ignore: list[str]) -> list[str]:
    """services/<name>/Dockerfile serves main.py's app as a non-root user, from its member
    alone; the Terraform runs it as a Cloud Run service of its own."""
    path = root / "services" / name / "Dockerfile"
    where = str(path.relative_to(root))
    main = root / "services" / name / "main.py"
    if not path.is_file():
        return [f"{where}: missing (every service has its own Dockerfile)"]
    instructions = parse_dockerfile(path.read_text())
    problems: list[str] = []
    if not instructions or instructions[0].keyword not in ("FROM", "ARG"):
        problems.append(f"{where}: does not start with FROM")
    users = [i.args for i in instructions if i.keyword == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append(f"{where}: the image must end with a USER other than root")
    cmds = [i for i in instructions if i.keyword in ("CMD", "ENTRYPOINT")]
    wanted = ["python", f"services/{name}/main.py"]
    try:
        argv = json.loads(cmds[-1].args) if cmds else None
    except ValueError:
        argv = None
    if argv != wanted:
        problems.append(f"{where}: CMD must be {json.dumps(wanted)}")
    if not main.is_file() or not _defines_app(main):
        problems.append(f"services/{name}/main.py: defines no module-level app and main()")
    problems += _check_locked_install(where, instructions, f"cashmatch-{name}")
    problems += check_dockerfile_sources(path, root, ignore)
    resources, _, tf_problems = load_terraform(tf_dir)
    runs = [
        r
        for r in resources
        if r["type"] == "google_cloud_run_v2_service" and r["name"] == name.replace("-", "_")
    ]
    if tf_problems:
        problems += tf_problems
    elif not runs:
        problems.append(
            f"{tf_dir.name}: no google_cloud_run_v2_service.{name} runs services/{name}"
        )
    elif f'var.images["{name}"]' not in json.dumps(runs[0]["body"]).replace('\\"', '"'):
        problems.append(
            f'{tf_dir.name}: google_cloud_run_v2_service.{name} must run var.images["{name}"]'
        )
    return problems


def check_service_dockerfile(name: str, root: Path = ROOT) -> list[str]:
    """services/<name>/Dockerfile builds an image that serves services/<name>/main.py:handle."""
    path = root / "services" / name / "Dockerfile"
    where = str(path.relative_to(root))
    if not path.is_file():
        return [f"{where}: missing (every service has its own Dockerfile)"]
    instructions = parse_dockerfile(path.read_text())
    problems: list[str] = []
    if not instructions or instructions[0].keyword not in ("FROM", "ARG"):
        problems.append(f"{where}: does not start with FROM")
    users = [i.args for i in instructions if i.keyword == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append(f"{where}: the image must end with a USER other than root")
    cmds = [i for i in instructions if i.keyword in ("CMD", "ENTRYPOINT")]
    if not cmds:
        return [*problems, f"{where}: no CMD"]
    cmd = cmds[-1]
    try:
        argv = json.loads(cmd.args) if cmd.args.startswith("[") else None
    except ValueError:
        argv = None
    if not isinstance(argv, list):
        return [*problems, f"{where}:{cmd.line}: CMD must be an exec-form JSON array"]
    source = f"services/{name}/main.py"
    options = _options([str(a) for a in argv])
    wanted = {"--target": "handle", "--signature-type": "cloudevent", "--source": source}
    if not argv or argv[0] != "functions-framework":
        problems.append(f"{where}:{cmd.line}: CMD does not run functions-framework")
    for key, value in wanted.items():
        if options.get(key) != value:
            problems.append(
                f"{where}:{cmd.line}: CMD needs {key}={value}, has {options.get(key)!r}"
            )
    problems += _check_locked_install(where, instructions, f"cashmatch-{name}")
    main = root / source
    if not main.is_file() or not _serves_handle(main):
        problems.append(f"{where}: {source} defines no @functions_framework.cloud_event handle")
    return problems


def _check_locked_install(where: str, instructions: list[Instruction], member: str) -> list[str]:
    """The image installs its workspace member alone, from the lock, without dev tools."""
    syncs = [i for i in instructions if i.keyword == "RUN" and "uv sync" in i.args]
    if not syncs:
        return [f"{where}: installs nothing with `uv sync` (images install from uv.lock)"]
    words = syncs[-1].args.split()
    wanted = ["--locked", "--no-dev", "--package"]
    problems = [f"{where}:{syncs[-1].line}: uv sync needs {w}" for w in wanted if w not in words]
    if "--package" in words and words[words.index("--package") + 1 :][:1] != [member]:
        problems.append(f"{where}:{syncs[-1].line}: uv sync must install --package {member}")
    if any(i.keyword == "RUN" and re.search(r"\bpip install\b", i.args) for i in instructions):
        problems.append(f"{where}: pip install bypasses the lock; use uv sync --locked")
    return problems


def check_dockerfiles(root: Path = ROOT, tf_dir: Path | None = None) -> list[str]:
    """One Dockerfile per service, alike but for the name, agreeing with the Terraform's
    services and subscriptions and with the Cloud Build config; COPY sources in the context."""
    from cashmatch.domain.subscriptions import SUBSCRIPTIONS

    problems: list[str] = []
    names = service_names(root)
    tf_dir = tf_dir or root / "infra" / "terraform"
    _, local_values, tf_problems = load_terraform(tf_dir)
    problems += tf_problems
    tf_services = set(local_values.get("services") or {})
    if tf_services != set(names):
        problems.append(
            f"services/*/main.py are {names}, but the Terraform's local.services are "
            f"{sorted(tf_services)}"
        )
    routes = local_values.get("subscriptions") or {}
    for sub in sorted(SUBSCRIPTIONS):
        service = (routes.get(sub) or {}).get("service")
        main = root / "services" / str(service) / "main.py"
        if service not in names:
            problems.append(f"subscription {sub!r} pushes to {service!r}, which has no main.py")
        elif sub not in _string_constants(main):
            problems.append(
                f"subscription {sub!r} pushes to {service}, whose main.py never names it"
            )

    ignore = _dockerignore(root)
    texts: dict[str, str] = {}
    for name in names:
        problems += check_service_dockerfile(name, root)
        path = root / "services" / name / "Dockerfile"
        if path.is_file():
            problems += check_dockerfile_sources(path, root, ignore)
            problems += _check_serving_sources(path, root)
            texts[name] = re.sub(rf"\b{re.escape(name)}\b", "<service>", path.read_text())
    serving = root / "infra" / "serving.Dockerfile"
    if serving.is_file():
        problems += check_dockerfile_sources(serving, root, ignore)
        problems += _check_locked_install(
            "infra/serving.Dockerfile", parse_dockerfile(serving.read_text()), "cashmatch-matcher"
        )
    if texts:
        first = sorted(texts)[0]
        for name, text in sorted(texts.items()):
            if text != texts[first]:
                line = next(
                    (
                        i
                        for i, (a, b) in enumerate(
                            zip(text.splitlines(), texts[first].splitlines(), strict=False), 1
                        )
                        if a != b
                    ),
                    min(len(text.splitlines()), len(texts[first].splitlines())) + 1,
                )
                problems.append(
                    f"services/{name}/Dockerfile:{line}: differs from services/{first}/Dockerfile "
                    "beyond the service name (keep them alike: one builder reuses their layers)"
                )
    for name in WEB_SERVICES:
        if (root / "services" / name).is_dir():
            problems += check_web_service(name, root, tf_dir, ignore)
    built = names + [n for n in WEB_SERVICES if (root / "services" / n).is_dir()]
    problems += check_cloudbuild(root / "infra" / "cloudbuild-services.yaml", built)
    return problems


def _check_serving_sources(path: Path, root: Path) -> list[str]:
    """The image holds what a roll-out archives to build the matcher image from (the deployer
    finds them at its working directory)."""
    from cashmatch.adapters.gcp.cloud_build import SOURCE_PATHS

    copied: set[str] = set()
    for instr in parse_dockerfile(path.read_text()):
        if instr.keyword in ("COPY", "ADD"):
            copied.update(_copy_sources(instr.args) or [])
    return [
        f"{path.relative_to(root)}: does not COPY {source} (cloud_build.SOURCE_PATHS)"
        for source in SOURCE_PATHS
        if source not in copied
    ]


def check_cloudbuild(path: Path, names: list[str]) -> list[str]:
    """The Cloud Build config builds and pushes every service from its own Dockerfile."""
    if not path.is_file():
        return [f"{path.name}: missing"]
    config = yaml.safe_load(path.read_text()) or {}
    images = set(config.get("images") or [])
    problems: list[str] = []
    for name in names:
        builds = [
            step
            for step in config.get("steps") or []
            if f"services/{name}/Dockerfile" in (step.get("args") or [])
        ]
        if not builds:
            problems.append(f"{path.name}: no step builds services/{name}/Dockerfile")
            continue
        args = builds[0]["args"]
        tag = next((a for a in args if f"/cashmatch/{name}:" in str(a)), None)
        if tag is None or tag not in images or args[-1] != ".":
            problems.append(
                f"{path.name}: the {name} step must tag .../cashmatch/{name}:..., push it "
                "(images:) and build from the repository root (.)"
            )
    return problems


def dockerfiles(root: Path = ROOT) -> list[Path]:
    """Every Dockerfile of the repository that an image is built from."""
    found = [root / "services" / name / "Dockerfile" for name in service_names(root)]
    found += [root / "services" / name / "Dockerfile" for name in WEB_SERVICES]
    found += sorted((root / "infra").glob("*Dockerfile"))
    return [p for p in found if p.is_file()]
