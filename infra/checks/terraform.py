"""Terraform (python-hcl2) against cashmatch.bootstrap: subscriptions pushed with an OIDC token and
a dead-letter policy, the bucket locked down, no owner/editor roles.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2

FORBIDDEN_ROLES = {"roles/owner", "roles/editor"}
_REF = re.compile(r"^\$\{(?:toset\()?local\.(\w+)\)?\}$")


def _clean(value: Any) -> Any:
    """python-hcl2 keeps the quotes of string literals and keys; drop them and its markers."""
    if isinstance(value, dict):
        return {
            _clean(k): _clean(v)
            for k, v in value.items()
            if k not in ("__is_block__", "__comments__")
        }
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"')
    return value


def load_terraform(tf_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
    """(resources, locals, problems); a resource is {type, name, file, body}."""
    resources: list[dict[str, Any]] = []
    local_values: dict[str, Any] = {}
    problems: list[str] = []
    files = sorted(tf_dir.glob("*.tf"))
    if not files:
        problems.append(f"{tf_dir}: no .tf files")
    for path in files:
        try:
            with path.open() as handle:
                doc = _clean(hcl2.load(handle))
        except Exception as exc:  # the parser raises several unrelated types
            problems.append(f"{path.name}: does not parse: {exc}")
            continue
        for block in doc.get("locals", []):
            local_values.update(block)
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                for rname, body in named.items():
                    resources.append(
                        {"type": rtype, "name": rname, "file": path.name, "body": body}
                    )
    return resources, local_values, problems


def instances(resource: dict[str, Any], local_values: dict[str, Any]) -> dict[str, Any]:
    """Instance key -> each.value of a resource (one instance keyed by '' without for_each).

    for_each is expanded from `locals` (only literal maps and lists are understood), so the names
    checked are the ones Terraform will create.
    """
    for_each = resource["body"].get("for_each")
    if for_each is None:
        return {"": None}
    match = _REF.match(str(for_each)) if isinstance(for_each, str) else None
    if not match or match.group(1) not in local_values:
        return {}
    values = local_values[match.group(1)]
    if isinstance(values, list):
        return {str(v): v for v in values}
    return dict(values)


def _resolve(text: Any, key: str, value: Any) -> Any:
    """Substitute each.key / each.value(.field) in a whole-string expression."""
    if not isinstance(text, str):
        return text
    if text in ("${each.key}", "${each.value}") and not isinstance(value, dict):
        return key if text == "${each.key}" else value
    if text == "${each.key}":
        return key
    field = re.fullmatch(r"\$\{each\.value\.(\w+)\}", text)
    if field and isinstance(value, dict):
        return value.get(field.group(1))
    return text


def _block(body: dict[str, Any], name: str) -> dict[str, Any] | None:
    found = body.get(name)
    if isinstance(found, list) and found and isinstance(found[0], dict):
        return found[0]
    return found if isinstance(found, dict) else None


# subscription id -> (body, where it is defined, each.key, each.value)
_Subscriptions = dict[str, tuple[dict[str, Any], str, str, Any]]


def check_terraform(tf_dir: Path, subscriptions: dict[str, str], dead_letter: str) -> list[str]:
    """Problems of the Terraform in `tf_dir` against the subscriptions (name -> topic) and the
    dead-letter topic the code uses; [] when it provisions them all as required."""
    resources, local_values, problems = load_terraform(tf_dir)
    if problems:
        return problems
    topics = _topics(resources, local_values)
    subs = _subscriptions(resources, local_values)
    for sub, topic in sorted(subscriptions.items()):
        if topic not in topics:
            problems.append(
                f"{tf_dir.name}: no google_pubsub_topic named {topic!r} (subscribed by {sub})"
            )
        if sub not in subs:
            problems.append(
                f"{tf_dir.name}: no google_pubsub_subscription named {sub!r} (topic {topic})"
            )
            continue
        body, where, _, value = subs[sub]
        problems += _subscription_problems(body, where, value, topic)
    if dead_letter not in topics:
        problems.append(f"{tf_dir.name}: no google_pubsub_topic named {dead_letter!r}")
    problems += _bucket_problems(tf_dir, resources)
    problems += _role_problems(resources)
    return problems


def _topics(resources: list[dict[str, Any]], local_values: dict[str, Any]) -> dict[str, str]:
    """Topic id -> where it is defined ("<file>: google_pubsub_topic.<name>")."""
    topics: dict[str, str] = {}
    for res in (r for r in resources if r["type"] == "google_pubsub_topic"):
        for key, value in instances(res, local_values).items():
            name = _resolve(res["body"].get("name"), key, value)
            local_ref = re.fullmatch(r"\$\{local\.(\w+)\}", str(name))
            if local_ref:
                name = local_values.get(local_ref.group(1), name)
            topics[str(name)] = f"{res['file']}: google_pubsub_topic.{res['name']}"
    return topics


def _subscriptions(resources: list[dict[str, Any]], local_values: dict[str, Any]) -> _Subscriptions:
    subs: _Subscriptions = {}
    for res in (r for r in resources if r["type"] == "google_pubsub_subscription"):
        for key, value in instances(res, local_values).items():
            name = str(_resolve(res["body"].get("name"), key, value))
            where = f"{res['file']}: google_pubsub_subscription.{res['name']}[{name!r}]"
            subs[name] = (res["body"], where, key, value)
    return subs


def _subscription_problems(body: dict[str, Any], where: str, value: Any, topic: str) -> list[str]:
    """A subscription must read `topic`, push with an OIDC token, dead-letter and back off."""
    problems: list[str] = []
    ref = str(body.get("topic", ""))
    wanted = isinstance(value, dict) and value.get("topic") == topic and "each.value.topic" in ref
    if not wanted and "google_pubsub_topic" not in ref:
        problems.append(f"{where}: topic is {ref!r}, expected the topic {topic!r}")
    elif "each.value.topic" in ref and not wanted:
        problems.append(f"{where}: subscribes to {value!r}, expected topic {topic!r}")
    push = _block(body, "push_config")
    if push is None:
        problems.append(f"{where}: no push_config (the services receive push deliveries)")
    else:
        oidc = _block(push, "oidc_token")
        if oidc is None:
            problems.append(f"{where}: push_config has no oidc_token")
        elif not oidc.get("service_account_email") or not oidc.get("audience"):
            problems.append(f"{where}: oidc_token needs service_account_email and audience")
    dlp = _block(body, "dead_letter_policy")
    if dlp is None:
        problems.append(f"{where}: no dead_letter_policy")
    elif "dead_letter" not in str(dlp.get("dead_letter_topic", "")):
        problems.append(f"{where}: dead_letter_policy does not point at the dead-letter topic")
    if _block(body, "retry_policy") is None:
        problems.append(
            f"{where}: no retry_policy (immediate redelivery hammers a failing service)"
        )
    return problems


def _bucket_problems(tf_dir: Path, resources: list[dict[str, Any]]) -> list[str]:
    """At least one bucket, and every bucket versioned, uniform access, never public."""
    problems: list[str] = []
    buckets = [r for r in resources if r["type"] == "google_storage_bucket"]
    if not buckets:
        problems.append(f"{tf_dir.name}: no google_storage_bucket")
    for res in buckets:
        where = f"{res['file']}: google_storage_bucket.{res['name']}"
        body = res["body"]
        versioning = _block(body, "versioning")
        if versioning is None or versioning.get("enabled") is not True:
            problems.append(f"{where}: versioning is not enabled")
        if body.get("uniform_bucket_level_access") is not True:
            problems.append(f"{where}: uniform_bucket_level_access is not true")
        if body.get("public_access_prevention") != "enforced":
            problems.append(f"{where}: public_access_prevention is not 'enforced'")
    return problems


def _role_problems(resources: list[dict[str, Any]]) -> list[str]:
    """No IAM resource grants owner or editor."""
    problems: list[str] = []
    for res in resources:
        if "iam" not in res["type"]:
            continue
        body = res["body"]
        roles = [body.get("role")] + [b.get("role") for b in body.get("binding", []) or []]
        for role in roles:
            if role in FORBIDDEN_ROLES:
                problems.append(f"{res['file']}: {res['type']}.{res['name']} grants {role}")
    return problems


def terraform_variables(tf_dir: Path) -> dict[str, Any]:
    """Variable name -> default (None without one)."""
    defaults: dict[str, Any] = {}
    for path in sorted(tf_dir.glob("*.tf")):
        with path.open() as handle:
            doc = _clean(hcl2.load(handle))
        for block in doc.get("variable", []):
            for name, body in block.items():
                defaults[name] = body.get("default")
    return defaults


def resource_body(resources: list[dict[str, Any]], rtype: str, name: str) -> dict[str, Any]:
    for res in resources:
        if res["type"] == rtype and res["name"] == name:
            return dict(res["body"])
    return {}
