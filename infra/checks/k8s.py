"""The k8s manifests (infra/k8s): plain resources and the RayService's pod templates against
the Kubernetes schemas (kubernetes-validate, strict: unknown fields fail); the rest of the
RayService (a CRD, absent from those schemas) field by field against KubeRay's ray.io/v1 API;
identity, namespace and operator access against the Terraform.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import yaml

from infra.checks import ROOT
from infra.checks.terraform import load_terraform, resource_body, terraform_variables

# Kubernetes minor version the manifests are validated against (GKE's regular channel).
K8S_VERSION = "1.34"

# KubeRay ray.io/v1 fields (docs/reference/api.md of ray-project/kuberay), per level.
RAYSERVICE_SPEC = {
    "serveConfigV2",
    "rayClusterConfig",
    "serveService",
    "upgradeStrategy",
    "excludeHeadPodFromServeSvc",
}
RAYSERVICE_DEPRECATED = {"serviceUnhealthySecondThreshold", "deploymentUnhealthySecondThreshold"}
RAYCLUSTER_SPEC = {
    "suspend",
    "managedBy",
    "autoscalerOptions",
    "headServiceAnnotations",
    "enableInTreeAutoscaling",
    "gcsFaultToleranceOptions",
    "headGroupSpec",
    "rayVersion",
    "workerGroupSpecs",
}
RAYJOB_SPEC = {
    "activeDeadlineSeconds",
    "backoffLimit",
    "submitterConfig",
    "managedBy",
    "deletionStrategy",
    "entrypoint",
    "runtimeEnvYAML",
    "jobId",
    "submissionMode",
    "entrypointResources",
    "clusterSelector",
    "rayClusterSpec",
    "submitterPodTemplate",
    "metadata",
    "suspend",
    "shutdownAfterJobFinishes",
    "ttlSecondsAfterFinished",
    "entrypointNumCpus",
    "entrypointNumGpus",
}
SUBMISSION_MODES = {"K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"}
# Kinds whose pods KubeRay makes from a RayCluster spec (kind -> the field holding it).
RAY_KINDS = {"RayService": "rayClusterConfig", "RayJob": "rayClusterSpec"}
HEAD_GROUP = {"template", "headService", "enableIngress", "rayStartParams", "serviceType"}
WORKER_GROUP = {
    "suspend",
    "groupName",
    "replicas",
    "minReplicas",
    "maxReplicas",
    "idleTimeoutSeconds",
    "rayStartParams",
    "template",
    "scaleStrategy",
    "numOfHosts",
}


def load_manifests(k8s_dir: Path) -> tuple[list[tuple[Path, dict[str, Any]]], list[str]]:
    """(file, document) for every YAML document in k8s_dir, and parse problems."""
    documents: list[tuple[Path, dict[str, Any]]] = []
    problems: list[str] = []
    for path in sorted(k8s_dir.glob("*.yaml")):
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        except yaml.YAMLError as exc:
            problems.append(f"{path.name}: does not parse: {exc}")
            continue
        for doc in docs:
            if not isinstance(doc, dict) or not doc.get("kind") or not doc.get("apiVersion"):
                problems.append(f"{path.name}: a document without apiVersion and kind")
                continue
            documents.append((path, doc))
    return documents, problems


def validate_k8s(where: str, doc: dict[str, Any]) -> list[str]:
    """Problems of one resource against the Kubernetes schemas (strict: unknown fields fail)."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        at = ".".join(str(p) for p in exc.absolute_path) or "(top)"
        return [f"{where}: {at}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"{where}: {exc.message}"]
    return []


def pod_templates(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A RayService's or RayJob's pod templates by group: 'head' and each worker groupName."""
    field = RAY_KINDS.get(str(doc.get("kind")), "rayClusterConfig")
    cluster = (doc.get("spec") or {}).get(field) or {}
    found: dict[str, dict[str, Any]] = {}
    head = (cluster.get("headGroupSpec") or {}).get("template")
    if isinstance(head, dict):
        found["head"] = head
    for group in cluster.get("workerGroupSpecs") or []:
        if isinstance(group, dict) and isinstance(group.get("template"), dict):
            found[str(group.get("groupName", "?"))] = group["template"]
    return found


def _unknown(where: str, block: Any, allowed: set[str]) -> list[str]:
    if not isinstance(block, dict):
        return [f"{where}: not a mapping"]
    return [
        f"{where}.{key}: not a field of KubeRay's ray.io/v1 API"
        for key in block
        if key not in allowed
    ]


def _start_params(where: str, params: Any) -> list[str]:
    if params is None:
        return []
    if not isinstance(params, dict):
        return [f"{where}: not a mapping"]
    return [
        f"{where}.{key}: {value!r} must be a string (KubeRay reads map[string]string)"
        for key, value in params.items()
        if not isinstance(value, str)
    ]


def check_rayservice(where: str, doc: dict[str, Any], root: Path = ROOT) -> list[str]:
    """A RayService against KubeRay's v1 fields; pod templates against the Pod schema."""
    problems: list[str] = []
    spec = doc.get("spec") or {}
    for key in sorted(RAYSERVICE_DEPRECATED & set(spec)):
        problems.append(f"{where}: spec.{key} is deprecated and ignored since KubeRay 1.1")
    problems += _unknown(f"{where}: spec", spec, RAYSERVICE_SPEC | RAYSERVICE_DEPRECATED)

    serve = spec.get("serveConfigV2")
    if not serve:
        problems.append(f"{where}: no spec.serveConfigV2")
    else:
        try:
            config = yaml.safe_load(serve)
        except yaml.YAMLError as exc:
            problems.append(f"{where}: serveConfigV2 is not YAML: {exc}")
            config = None
        apps = (config or {}).get("applications") if isinstance(config, dict) else None
        if not apps:
            problems.append(f"{where}: serveConfigV2 has no applications")
        for app in apps or []:
            problems += _check_import_path(where, str(app.get("import_path", "")), root)

    cluster = spec.get("rayClusterConfig")
    if not cluster:
        problems.append(f"{where}: no spec.rayClusterConfig")
        return problems
    return problems + _check_cluster(where, "rayClusterConfig", doc, root)


def check_rayjob(where: str, doc: dict[str, Any], root: Path = ROOT) -> list[str]:
    """A RayJob against KubeRay's v1 fields: a `cashmatch` command of this repo as entrypoint,
    on a cluster of its own (rayClusterSpec, checked like the RayService's) or an existing one
    (clusterSelector)."""
    spec = doc.get("spec") or {}
    problems = _unknown(f"{where}: spec", spec, RAYJOB_SPEC)
    entrypoint = str(spec.get("entrypoint") or "")
    problems += _check_entrypoint(where, entrypoint, root)
    mode = spec.get("submissionMode", "K8sJobMode")
    if mode not in SUBMISSION_MODES:
        problems.append(
            f"{where}: submissionMode {mode!r} is not one of {sorted(SUBMISSION_MODES)}"
        )
    for key in ("activeDeadlineSeconds", "ttlSecondsAfterFinished", "backoffLimit"):
        if key in spec and not (isinstance(spec[key], int) and spec[key] >= 0):
            problems.append(f"{where}: spec.{key} must be a non-negative integer")
    has_cluster, has_selector = "rayClusterSpec" in spec, "clusterSelector" in spec
    if has_cluster == has_selector:
        problems.append(f"{where}: needs exactly one of spec.rayClusterSpec, spec.clusterSelector")
    if has_selector:
        selector = spec["clusterSelector"]
        if not isinstance(selector, dict) or not all(isinstance(v, str) for v in selector.values()):
            problems.append(f"{where}: clusterSelector must map labels to strings")
        return problems
    if spec.get("shutdownAfterJobFinishes") is not True:
        problems.append(
            f"{where}: a cluster of its own must go when the job ends (shutdownAfterJobFinishes)"
        )
    return problems + _check_cluster(where, "rayClusterSpec", doc, root)


def _check_entrypoint(where: str, entrypoint: str, root: Path) -> list[str]:
    """The entrypoint runs `cashmatch COMMAND` with options that command has."""
    import shlex

    words = shlex.split(entrypoint)
    if not words or words[0] != "cashmatch":
        return [f"{where}: entrypoint {entrypoint!r} is not a cashmatch command"]
    from typer.main import get_command

    from cashmatch.entrypoints.cli.main import app

    cli = get_command(app)
    ctx_words = [w for w in words[1:]]
    top_options = {o for p in cli.params for o in p.opts}
    while ctx_words and ctx_words[0].startswith("--"):  # global options (--stack gcp ...)
        name = ctx_words.pop(0).split("=")[0]
        if name not in top_options:
            return [f"{where}: entrypoint: cashmatch has no option {name}"]
        if "=" not in name and ctx_words and not ctx_words[0].startswith("--"):
            ctx_words.pop(0)
    if not ctx_words:
        return [f"{where}: entrypoint names no cashmatch command"]
    command = getattr(cli, "commands", {}).get(ctx_words[0])
    if command is None:
        return [f"{where}: entrypoint: cashmatch has no command {ctx_words[0]!r}"]
    known = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    return [
        f"{where}: entrypoint: cashmatch {ctx_words[0]} has no option {w.split('=')[0]}"
        for w in ctx_words[1:]
        if w.startswith("--") and w.split("=")[0] not in known
    ]


def _check_cluster(where: str, field: str, doc: dict[str, Any], root: Path) -> list[str]:
    """A RayCluster spec (a RayService's rayClusterConfig, a RayJob's rayClusterSpec)."""
    problems: list[str] = []
    cluster = (doc.get("spec") or {}).get(field) or {}
    problems += _unknown(f"{where}: {field}", cluster, RAYCLUSTER_SPEC)
    ray_image = _serving_ray_version(root)
    if ray_image and str(cluster.get("rayVersion")) != ray_image:
        problems.append(
            f"{where}: rayVersion {cluster.get('rayVersion')!r} but infra/serving.Dockerfile "
            f"builds on Ray {ray_image}"
        )
    head = cluster.get("headGroupSpec") or {}
    problems += _unknown(f"{where}: headGroupSpec", head, HEAD_GROUP)
    problems += _start_params(f"{where}: headGroupSpec.rayStartParams", head.get("rayStartParams"))
    names: set[str] = set()
    for i, group in enumerate(cluster.get("workerGroupSpecs") or []):
        at = f"{where}: workerGroupSpecs[{i}]"
        problems += _unknown(at, group, WORKER_GROUP)
        if not isinstance(group, dict):
            continue
        name = group.get("groupName")
        if not name or name in names:
            problems.append(f"{at}: groupName missing or not unique")
        names.add(str(name))
        problems += _start_params(f"{at}.rayStartParams", group.get("rayStartParams"))
        counts = {k: group.get(k) for k in ("minReplicas", "replicas", "maxReplicas")}
        low, wanted, high = counts.values()
        if not (isinstance(low, int) and isinstance(wanted, int) and isinstance(high, int)):
            problems.append(f"{at}: minReplicas, replicas and maxReplicas must be integers")
        elif not low <= wanted <= high:
            problems.append(f"{at}: needs minReplicas <= replicas <= maxReplicas, got {counts}")
    templates = pod_templates(doc)
    if "head" not in templates:
        problems.append(f"{where}: headGroupSpec has no pod template")
    for group, template in templates.items():
        wrapped = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": f"{group}-template"},
            "template": template,
        }
        problems += validate_k8s(f"{where}: pod template {group!r}", wrapped)
    return problems


def _check_import_path(where: str, import_path: str, root: Path) -> list[str]:
    module, _, attr = import_path.partition(":")
    # the library's modules live under shared/src (the image installs it from there)
    source = root / "shared" / "src" / (module.replace(".", "/") + ".py")
    if not module or not attr or not source.is_file():
        return [f"{where}: import_path {import_path!r} names no module:attribute of this repo"]
    tree = ast.parse(source.read_text())
    defined = {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    } | {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    if attr not in defined:
        return [f"{where}: import_path {import_path!r}: {module} defines no {attr}"]
    return []


def _serving_ray_version(root: Path) -> str | None:
    path = root / "infra" / "serving.Dockerfile"
    if not path.is_file():
        return None
    match = re.search(r"^FROM\s+rayproject/ray:(\d+\.\d+\.\d+)", path.read_text(), re.MULTILINE)
    return match.group(1) if match else None


def check_k8s(k8s_dir: Path, tf_dir: Path | None = None, root: Path = ROOT) -> list[str]:
    """The manifests: schemas, KubeRay fields, and agreement with the Terraform (namespace,
    Workload Identity account, the operator's namespace in the network policy)."""
    documents, problems = load_manifests(k8s_dir)
    tf_dir = tf_dir or root / "infra" / "terraform"
    resources, _, _ = load_terraform(tf_dir)
    namespace = terraform_variables(tf_dir).get("matcher_namespace")
    wi_member = str(
        resource_body(
            resources, "google_service_account_iam_member", "matcher_workload_identity"
        ).get("member", "")
    )
    wi = re.search(r"\[(?P<ns>[^/\]]+)/(?P<ksa>[^\]]+)\]", wi_member)
    operator_ns = resource_body(resources, "helm_release", "kuberay_operator").get("namespace")

    accounts = {
        (doc.get("metadata") or {}).get("name")
        for _, doc in documents
        if doc["kind"] == "ServiceAccount"
    }
    policies = [doc for _, doc in documents if doc["kind"] == "NetworkPolicy"]
    rayservices = 0
    for path, doc in documents:
        name = (doc.get("metadata") or {}).get("name", "?")
        where = f"{path.name}: {doc['kind']} {name}"
        doc_ns = (doc.get("metadata") or {}).get("namespace")
        if doc_ns is not None and namespace is not None and doc_ns != namespace:
            problems.append(
                f"{where}: namespace {doc_ns!r}, but the Terraform's matcher_namespace is "
                f"{namespace!r} (Workload Identity binds that one)"
            )
        if doc["kind"] not in RAY_KINDS:
            problems += validate_k8s(where, doc)
            continue
        if doc["kind"] == "RayService":
            rayservices += 1
            problems += check_rayservice(where, doc, root)
        else:
            problems += check_rayjob(where, doc, root)
        for group, template in pod_templates(doc).items():
            pod = template.get("spec") or {}
            account = pod.get("serviceAccountName")
            if account not in accounts:
                problems.append(
                    f"{where}: pod template {group!r} runs as {account!r}, which no "
                    f"ServiceAccount in {k8s_dir.name}/ creates"
                )
            if wi and account != wi.group("ksa"):
                problems.append(
                    f"{where}: pod template {group!r} runs as {account!r}, but Workload "
                    f"Identity (gke.tf) binds {wi.group('ksa')!r}"
                )
            labels = (template.get("metadata") or {}).get("labels") or {}
            for policy in policies:
                selector = ((policy.get("spec") or {}).get("podSelector") or {}).get("matchLabels")
                if selector and not selector.items() <= labels.items():
                    problems.append(
                        f"{where}: pod template {group!r} is not selected by NetworkPolicy "
                        f"{policy['metadata'].get('name')} (labels {labels})"
                    )
    if rayservices == 0:
        problems.append(f"{k8s_dir.name}: no RayService manifest")
    if operator_ns and policies:
        allowed = json.dumps([p.get("spec") for p in policies])
        if f'"{operator_ns}"' not in allowed:
            problems.append(
                f"{k8s_dir.name}: no NetworkPolicy lets the KubeRay operator's namespace "
                f"{operator_ns!r} (gke.tf) reach the matcher"
            )
    return problems


def checkov_k8s_documents(k8s_dir: Path) -> list[dict[str, Any]]:
    """The manifests as checkov can read them: a CRD is skipped by its kubernetes checks, so
    each RayService pod template becomes a Pod (with the template's labels and annotations,
    checkov.io/skip annotations included)."""
    documents, _ = load_manifests(k8s_dir)
    out: list[dict[str, Any]] = []
    for _, doc in documents:
        if doc["kind"] not in RAY_KINDS:
            out.append(doc)
            continue
        name = (doc.get("metadata") or {}).get("name", doc["kind"].lower())
        for group, template in pod_templates(doc).items():
            metadata = dict(template.get("metadata") or {})
            metadata["name"] = f"{name}-{group}"
            out.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": metadata,
                    "spec": template.get("spec"),
                }
            )
    return out
