"""The infrastructure code agrees with cashmatch.bootstrap and passes its scanners
(infra/check_infra.py), and each check really catches what it is there for."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import urllib.error
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# uv's words when the package index cannot be reached (no network on this machine).


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _checker():
    return _load("check_infra", ROOT / "infra" / "check_infra.py")


def test_the_infra_has_no_problems() -> None:
    assert _checker().check_all(ROOT) == []


def test_a_subscription_without_oidc_token_is_reported(tmp_path: Path) -> None:
    from cashmatch.domain.subscriptions import DEAD_LETTER_TOPIC, SUBSCRIPTIONS

    broken = tmp_path / "terraform"
    shutil.copytree(ROOT / "infra" / "terraform", broken)
    main = broken / "main.tf"
    text = main.read_text()
    start = text.index("    oidc_token {")
    end = text.index("    }\n", start) + len("    }\n")
    main.write_text(text[:start] + text[end:])

    problems = _checker().check_terraform(broken, SUBSCRIPTIONS, DEAD_LETTER_TOPIC)

    assert problems
    assert all("oidc_token" in p and "main.tf" in p for p in problems)
    assert len(problems) == len(SUBSCRIPTIONS)


# --- Dockerfiles -------------------------------------------------------------------------------


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """The files the Dockerfile checks read, in a folder of their own to break."""
    root = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("services", "infra"):
        shutil.copytree(ROOT / folder, root / folder, ignore=ignore)
    (root / "shared").symlink_to(ROOT / "shared")
    for name in ("pyproject.toml", "uv.lock", "README.md", ".dockerignore"):
        shutil.copyfile(ROOT / name, root / name)
    return root


def test_the_dockerfile_checks_pass_on_a_faithful_copy(repo_copy: Path) -> None:
    assert _checker().check_dockerfiles(repo_copy) == []


def test_a_missing_or_miswired_service_dockerfile_is_reported(repo_copy: Path) -> None:
    (repo_copy / "services" / "monitor" / "Dockerfile").unlink()
    collector = repo_copy / "services" / "collector" / "Dockerfile"
    collector.write_text(
        collector.read_text().replace("services/collector/main.py", "services/trainer/main.py")
    )
    evaluator = repo_copy / "services" / "evaluator" / "Dockerfile"
    evaluator.write_text(
        evaluator.read_text().replace("COPY shared ./shared", "COPY shared ./shared\nRUN true")
    )
    deployer = repo_copy / "services" / "deployer" / "Dockerfile"
    deployer.write_text(deployer.read_text().replace("COPY shared", "COPY sharedd"))
    (repo_copy / ".dockerignore").write_text(
        (repo_copy / ".dockerignore").read_text().replace("!uv.lock\n", "")
    )

    problems = "\n".join(_checker().check_dockerfiles(repo_copy))

    assert "services/monitor/Dockerfile: missing" in problems
    assert "services/collector/Dockerfile:" in problems
    assert "CMD needs --source=services/collector/main.py" in problems
    assert "services/evaluator/Dockerfile:" in problems and "beyond the service name" in problems
    assert "COPY source 'sharedd' is not in the repo" in problems
    assert "COPY source 'uv.lock' is in .dockerignore" in problems


def test_an_image_that_does_not_install_its_member_from_the_lock_is_reported(
    repo_copy: Path,
) -> None:
    trainer = repo_copy / "services" / "trainer" / "Dockerfile"
    trainer.write_text(
        trainer.read_text().replace("--package cashmatch-trainer", "--package cashmatch-matcher")
    )
    alerter = repo_copy / "services" / "alerter" / "Dockerfile"
    alerter.write_text(alerter.read_text().replace("uv sync --locked", "uv sync"))
    serving = repo_copy / "infra" / "serving.Dockerfile"
    serving.write_text(serving.read_text().replace("RUN uv sync", "RUN pip install . && uv sync"))

    problems = "\n".join(_checker().check_dockerfiles(repo_copy))

    assert "services/trainer/Dockerfile:" in problems
    assert "uv sync must install --package cashmatch-trainer" in problems
    assert "services/alerter/Dockerfile:" in problems and "uv sync needs --locked" in problems
    assert "infra/serving.Dockerfile: pip install bypasses the lock" in problems


def test_the_images_dependency_sets_are_checked_from_the_lock(repo_copy: Path) -> None:
    """No Ray outside the matcher: a collector asking for the serve extra is reported, from a
    lock made again with that change (what its image would then install)."""
    assert _checker().check_dependencies(repo_copy) == []
    member = repo_copy / "services" / "collector" / "pyproject.toml"
    member.write_text(
        member.read_text().replace(
            "cashmatch[functions,gcp,local]", "cashmatch[functions,gcp,local,serve]"
        )
    )
    from infra.checks.dependencies import uv_binary

    subprocess.run([uv_binary(), "lock", "--quiet"], cwd=repo_copy, check=True, timeout=300)

    problems = _checker().check_dependencies(repo_copy)

    assert any(p.startswith("services/collector: its image would install ray ") for p in problems)


def test_a_service_left_out_of_the_cloud_build_is_reported(repo_copy: Path) -> None:
    config = repo_copy / "infra" / "cloudbuild-services.yaml"
    config.write_text(config.read_text().replace("services/alerter/Dockerfile", "x/Dockerfile"))

    problems = _checker().check_dockerfiles(repo_copy)

    assert problems == [
        "cloudbuild-services.yaml: no step builds services/alerter/Dockerfile",
    ]


@pytest.mark.parametrize(
    ("path", "ignored"),
    [("shared", False), (".venv", True), ("services/x/__pycache__", True), ("model", False)],
)
def test_dockerignore_semantics(path: str, ignored: bool) -> None:
    from infra.checks.dockerfiles import dockerignored

    patterns = ["*", "!shared/", "!services/", "!model/", "**/__pycache__"]
    assert dockerignored(path, patterns) is ignored


# --- Kubernetes --------------------------------------------------------------------------------


def _k8s_copy(tmp_path: Path, edit, name: str = "rayservice.yaml") -> Path:
    k8s = tmp_path / "k8s"
    shutil.copytree(ROOT / "infra" / "k8s", k8s)
    path = k8s / name
    path.write_text(edit(path.read_text()))
    return k8s


def test_the_rayservice_checks_catch_kuberay_and_schema_mistakes(tmp_path: Path) -> None:
    def edit(text: str) -> str:
        text = text.replace(
            "spec:\n  serveConfigV2:",
            "spec:\n  serviceUnhealthySecondThreshold: 900\n  serveConfigV2:",
        )
        text = text.replace(
            "    enableInTreeAutoscaling: true",
            "    enableInTreeAutoscaling: true\n    autoscaling: true",
        )
        text = text.replace('num-cpus: "0"', "num-cpus: 0")
        text = text.replace(
            "imagePullPolicy: Always\n              securityContext",
            "imagePullPolicy: Always\n              restartPolicyy: Never\n              securityContext",
        )
        text = text.replace("minReplicas: 2", "minReplicas: 3")
        return text.replace(
            "import_path: cashmatch.entrypoints.matcher.app:build_app",
            "import_path: cashmatch.entrypoints.matcher.app:build",
        )

    problems = "\n".join(_checker().check_k8s(_k8s_copy(tmp_path, edit), root=ROOT))

    assert "spec.serviceUnhealthySecondThreshold is deprecated" in problems
    assert "rayClusterConfig.autoscaling: not a field of KubeRay" in problems
    assert "rayStartParams.num-cpus: 0 must be a string" in problems
    assert "pod template 'head'" in problems and "restartPolicyy" in problems
    assert "needs minReplicas <= replicas <= maxReplicas" in problems
    assert "cashmatch.entrypoints.matcher.app defines no build" in problems


def test_the_rayjob_checks_catch_kuberay_cli_and_schema_mistakes(tmp_path: Path) -> None:
    def edit(text: str) -> str:
        text = text.replace("--engine ray", "--engine ray --fast")
        text = text.replace("backoffLimit: 1", "backoffLimit: 1\n  retries: 3")
        text = text.replace("shutdownAfterJobFinishes: true", "shutdownAfterJobFinishes: false")
        text = text.replace("submissionMode: K8sJobMode", "submissionMode: JobMode")
        text = text.replace("maxReplicas: 2", "maxReplicas: 1")
        return text.replace(
            "imagePullPolicy: Always\n              securityContext",
            "imagePullPolicy: Always\n              restartPolicyy: Never\n"
            "              securityContext",
        )

    k8s = _k8s_copy(tmp_path, edit, "rayjob-match.yaml")
    problems = "\n".join(_checker().check_k8s(k8s, root=ROOT))

    assert "cashmatch match has no option --fast" in problems
    assert "spec.retries: not a field of KubeRay" in problems
    assert "must go when the job ends (shutdownAfterJobFinishes)" in problems
    assert "submissionMode 'JobMode' is not one of" in problems
    assert "needs minReplicas <= replicas <= maxReplicas" in problems
    assert (
        "RayJob cashmatch-match: pod template 'head'" in problems and "restartPolicyy" in problems
    )
    assert "rayservice.yaml" not in problems  # the other manifest is fine


def test_an_identity_or_network_policy_mismatch_is_reported(tmp_path: Path) -> None:
    k8s = _k8s_copy(
        tmp_path,
        lambda t: t.replace(
            "serviceAccountName: cashmatch-matcher", "serviceAccountName: other", 1
        ),
    )
    base = k8s / "base.yaml"
    base.write_text(base.read_text().replace("kuberay-system", "elsewhere"))

    problems = "\n".join(_checker().check_k8s(k8s, root=ROOT))

    assert "pod template 'head' runs as 'other', which no ServiceAccount" in problems
    assert "Workload Identity (gke.tf) binds 'cashmatch-matcher'" in problems
    assert "operator's namespace 'kuberay-system'" in problems


# --- checkov -----------------------------------------------------------------------------------


def _report(kind: str, failed=(), skipped=(), resources: int = 1) -> dict:
    return {
        "check_type": kind,
        "summary": {"passed": 3, "resource_count": resources, "parsing_errors": 0},
        "results": {"failed_checks": list(failed), "skipped_checks": list(skipped)},
    }


def _check(cid: str, resource: str = "r", reason: str | None = None) -> dict:
    found = {"check_id": cid, "check_name": "a check", "file_path": "/f.tf", "resource": resource}
    if reason is not None:
        found["check_result"] = {"result": "SKIPPED", "suppress_comment": reason}
    return found


def test_checkov_findings_fail_unless_skipped_with_a_reason() -> None:
    from infra.checks.scanners import judge_checkov

    reports = [
        _report("terraform", failed=[_check("CKV_GCP_1"), _check("CKV_GCP_2")]),
        _report("kubernetes", skipped=[_check("CKV_K8S_1", reason="No comment provided")]),
        _report("dockerfile", skipped=[_check("CKV_DOCKER_1", reason="a reason in words")]),
    ]
    skips = {"CKV_GCP_2": "explained for every resource", "CKV_GCP_9": "matches nothing here"}

    outcome = judge_checkov(reports, skips)

    assert outcome.problems == [
        "checkov CKV_GCP_1 failed: f.tf: r: a check (fix it, or skip it with a reason beside "
        "it or in infra/checkov-skips.yaml)",
        "checkov CKV_K8S_1 skipped without a reason: f.tf: r",
        "infra/checkov-skips.yaml: CKV_GCP_9 matched nothing; delete the entry",
    ]
    assert set(outcome.explained) == {"CKV_GCP_2", "CKV_DOCKER_1"}
    assert outcome.passed == 9


def test_checkov_scanning_nothing_is_a_failure() -> None:
    from infra.checks.scanners import judge_checkov

    outcome = judge_checkov([_report("terraform", resources=0)], {})

    assert outcome.problems == [
        "checkov terraform: no resources scanned",
        "checkov kubernetes: no report",
        "checkov dockerfile: no report",
    ]


def test_the_skips_file_needs_check_ids_and_reasons(tmp_path: Path) -> None:
    from infra.checks.scanners import load_checkov_skips

    path = tmp_path / "skips.yaml"
    path.write_text(
        "CKV_K8S_8: KubeRay injects probes\nCKV_K8S_9: ''\nnot-an-id: some words here\n"
    )

    skips, problems = load_checkov_skips(path)

    assert skips == {"CKV_K8S_8": "KubeRay injects probes"}
    assert problems == [
        "skips.yaml: CKV_K8S_9 needs a reason in words",
        "skips.yaml: 'not-an-id' is not a checkov check id",
    ]
    assert load_checkov_skips(ROOT / "infra" / "checkov-skips.yaml")[1] == []


@pytest.mark.timeout(1500)
def test_checkov_leaves_no_finding_unexplained() -> None:
    """The real run, as `make check-infra` does it. Its first run installs the pinned checkov
    with uv (~10 s from a package index); only an unreachable index skips the test."""
    checker = _checker()
    ready, detail = checker.checkov_ready(ROOT)
    # No skip: CI reaches the package index, and a checkov that cannot be installed is a
    # failure to see, not a pass.
    assert ready, f"checkov could not be installed or run: {detail[-600:]}"

    outcome = checker.run_checkov(ROOT)

    assert outcome.problems == []
    assert outcome.passed > 100
    assert {"CKV_DOCKER_2", "CKV_GCP_83", "CKV_K8S_38"} <= set(outcome.explained)


# --- make audit --------------------------------------------------------------------------------


def _auditor():
    return _load("audit_deps", ROOT / "infra" / "audit_deps.py")


def test_the_audit_says_skipped_when_no_vulnerability_service_answers(monkeypatch, capsys) -> None:
    audit = _auditor()

    def unreachable(request):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(audit, "_fetch", unreachable)
    monkeypatch.delenv("AUDIT_REQUIRED", raising=False)

    assert audit.main([]) == 0
    assert audit.main(["--require"]) == audit.SKIPPED
    out = capsys.readouterr().out
    assert out.count("audit skipped: no vulnerability service reachable") == 2
    assert "api.osv.dev/v1/query unreachable" in out


def test_a_mirror_without_advisories_does_not_count_as_a_clean_audit(monkeypatch) -> None:
    audit = _auditor()
    monkeypatch.setattr(audit, "_fetch", lambda request: (200, b'{"vulns": []}'))

    assert "no vulnerability data there" in (audit.probe_osv() or "")


def test_the_audit_reports_vulnerable_packages(monkeypatch, tmp_path, capsys) -> None:
    audit = _auditor()
    report = {
        "dependencies": [
            {
                "name": "jinja2",
                "version": "2.4.1",
                "vulns": [{"id": "PYSEC-1", "fix_versions": ["2.10.1"]}],
            },
            {"name": "requests", "version": "2.32.0", "vulns": []},
            {"name": "local-thing", "skip_reason": "Dependency not found on PyPI"},
        ]
    }

    def fake_pip_audit(argv, **kwargs):
        Path(argv[argv.index("--output") + 1]).write_text(json.dumps(report))

        class Done:
            returncode = 1
            stderr = ""

        return Done()

    monkeypatch.setattr(audit.subprocess, "run", fake_pip_audit)

    assert audit.run_pip_audit("osv") == 1
    out = capsys.readouterr().out
    assert "VULNERABLE jinja2 2.4.1: PYSEC-1 (fixed in 2.10.1)" in out
    assert "not audited: local-thing" in out
    assert "2 packages audited, 1 vulnerable, 1 not audited" in out


def test_the_declared_python_range_is_what_the_lock_installs(repo_copy: Path) -> None:
    from infra.checks.dependencies import check_python_range

    assert check_python_range(repo_copy) == []
    pyproject = repo_copy / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(
        text.replace('requires-python = ">=3.11,<3.14"', 'requires-python = ">=3.11,<3.15"')
    )
    (wider,) = check_python_range(repo_copy)
    assert "the lock cannot install ray on 3.14" in wider
    pyproject.write_text(
        text.replace('requires-python = ">=3.11,<3.14"', 'requires-python = ">=3.11,<3.13"')
    )
    assert check_python_range(repo_copy) == [
        "requires-python >=3.11,<3.13: the lock also installs on 3.13; widen it"
    ]


def test_the_serving_images_ray_is_the_locked_one(repo_copy: Path) -> None:
    from infra.checks.dependencies import check_serving_ray

    assert check_serving_ray(repo_copy) == []
    dockerfile = repo_copy / "infra" / "serving.Dockerfile"
    dockerfile.write_text(
        dockerfile.read_text().replace("rayproject/ray:2.60.0", "rayproject/ray:2.61.0")
    )
    assert check_serving_ray(repo_copy) == [
        "infra/serving.Dockerfile builds on Ray 2.61.0 but uv.lock installs 2.60.0 in the "
        "matcher's image"
    ]
