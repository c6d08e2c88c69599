"""Check the infrastructure code against what the services expect, without a cloud account.

Run: .venv/bin/python infra/check_infra.py [--no-checkov]   (exit 1, one line per problem)

- Terraform (infra/checks/terraform.py, python-hcl2): every subscription of cashmatch.bootstrap
  pushed with an OIDC token and a dead-letter policy, the bucket locked down, no owner/editor.
- Kubernetes (infra/checks/k8s.py): the manifests against the Kubernetes schemas
  (kubernetes-validate), the RayService against KubeRay's fields and the Terraform. Its Serve
  config is validated against Ray's schema and MatcherArgs by tests/unit/test_matcher_schemas.py.
- Dockerfiles (infra/checks/dockerfiles.py): one per service, serving that service's `handle`,
  installing that service's workspace member alone from uv.lock.
- Dependencies (infra/checks/dependencies.py): each image's locked dependency set, from
  `uv export --package`; no Ray outside the matcher, no Vertex AI outside trainer/evaluator.
- hadolint on every Dockerfile, and checkov on all of it, with every failed check fixed or
  skipped with a reason (infra/checks/scanners.py, infra/checkov-skips.yaml). `--no-checkov`
  leaves checkov out (its first run installs it with uv from the package index).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from infra.checks.dependencies import check_dependencies  # noqa: E402
from infra.checks.dependencies import report as dependency_report  # noqa: E402
from infra.checks.dockerfiles import check_dockerfiles  # noqa: E402
from infra.checks.k8s import check_k8s  # noqa: E402
from infra.checks.scanners import (  # noqa: E402
    CHECKOV_VERSION,
    CheckovOutcome,
    checkov_ready,
    run_checkov,
    run_hadolint,
)
from infra.checks.terraform import check_terraform  # noqa: E402

__all__ = [
    "CheckovOutcome",
    "check_all",
    "check_dependencies",
    "check_dockerfiles",
    "check_k8s",
    "check_terraform",
    "checkov_ready",
    "run_checkov",
    "run_hadolint",
]


def check_all(root: Path = ROOT) -> list[str]:
    """Every check but checkov: Terraform, k8s manifests, Dockerfiles, dependencies, hadolint."""
    from cashmatch.domain.subscriptions import DEAD_LETTER_TOPIC, SUBSCRIPTIONS

    tf_dir = root / "infra" / "terraform"
    return (
        check_terraform(tf_dir, SUBSCRIPTIONS, DEAD_LETTER_TOPIC)
        + check_k8s(root / "infra" / "k8s", tf_dir, root)
        + check_dockerfiles(root, tf_dir)
        + check_dependencies(root)
        + run_hadolint(root)
    )


def report_checkov(outcome: CheckovOutcome, seconds: float) -> None:
    """What checkov passed and every skip with its reason, so the skips stay in sight."""
    skipped = sum(len(places) for _, places in outcome.explained.values())
    sys.stdout.write(
        f"checkov {CHECKOV_VERSION} ({seconds:.0f} s): {outcome.passed} passed, "
        f"{skipped} skipped with a reason ({len(outcome.explained)} checks):\n"
    )
    for check, (reason, places) in sorted(outcome.explained.items()):
        sys.stdout.write(f"  {check} x{len(places)}: {reason}\n")


def main(argv: list[str]) -> int:
    problems = check_all()
    sys.stdout.write("what each image installs (uv.lock):\n" + dependency_report())
    with_checkov = "--no-checkov" not in argv
    if with_checkov:
        started = time.monotonic()
        outcome = run_checkov()
        report_checkov(outcome, time.monotonic() - started)
        problems += outcome.problems
    sys.stdout.flush()
    for problem in problems:
        sys.stderr.write(f"FAIL {problem}\n")
    if not problems:
        sys.stdout.write(
            "infra OK: terraform, k8s manifests, Dockerfiles and image dependencies agree"
            + ("" if with_checkov else " (checkov not run)")
            + "\n"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
