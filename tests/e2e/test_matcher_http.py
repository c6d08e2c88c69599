"""The matcher on local Ray Serve, through real HTTP on 127.0.0.1.

One detached Ray head per module (LocalRayServing, as the deployer uses it); one small model
trained per session and registered under several versions.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis import checks as sc
from schemathesis.specs.openapi import checks as oc

from cashmatch.service_layer.registry import ModelRegistry
from tests.fakes.models import register_artifact

FUZZ_CHECKS = [
    sc.not_a_server_error,
    oc.status_code_conformance,
    oc.content_type_conformance,
    oc.response_schema_conformance,
    oc.negative_data_rejection,
]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(600),
    # Ray's own modules use pydantic APIs deprecated since 2.0; nothing of ours.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"),
]


# What the tests read back through GET /v1/model.
LINEAGE = {
    "dataset_version": "ds-test",
    "training_months": ["2025-01", "2025-02", "2025-03"],
    "training_metrics": {"auto_rate@99": 0.5},
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    serving: object  # LocalRayServing
    registry: ModelRegistry
    settings: object
    url: str
    transfers: list[dict]
    invoices: list[dict]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, small_model):
    """Ray head + Serve with the matcher app and no model yet; stopped after the module."""
    from cashmatch.adapters.local.blobstore import DirectoryBlobStore
    from cashmatch.adapters.local.ray_head import stop_local_serving
    from cashmatch.adapters.local.ray_serving import LocalRayServing
    from cashmatch.settings import Settings

    data, transfers, invoices = small_model
    workspace = Path(tmp_path_factory.mktemp("serving")) / "ws"
    settings = Settings(workspace=workspace, serve_port=_free_port(), serving="ray")
    registry = ModelRegistry(DirectoryBlobStore(workspace / "blobs"))
    for version in ("v1", "v2", "v3"):
        register_artifact(registry, version, data, **LINEAGE, caused_by=f"test-{version}")
    # Bytes that do not hash to the registered digest: a corrupt or tampered artifact.
    register_artifact(
        registry,
        "corrupt",
        data[: len(data) // 2],
        digest=hashlib.sha256(data).hexdigest(),
        **LINEAGE,
        caused_by="test-corrupt",
    )
    serving = LocalRayServing(
        settings,
        timeout_s=240,
        app_overrides={
            "limits": {"max_transfers": 100, "max_invoices": 400, "max_body_bytes": 400_000}
        },
    )
    # A developer's own `ray.init()` leaves ~/.ray/auth_token behind; the stack must not care.
    home = Path(tmp_path_factory.mktemp("home"))
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text("a stray token of another Ray session\n")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HOME", str(home))
        try:
            serving.start()
            serving.apply(None)
            serving.wait_until_answering()
            yield Stack(serving, registry, settings, serving.endpoint, transfers, invoices)
        finally:
            stop_local_serving(workspace)


def _single(stack: Stack, k: int = 0, n_invoices: int = 50) -> dict:
    return {"transfer": stack.transfers[k], "open_invoices": stack.invoices[:n_invoices]}


def test_health_is_503_until_a_model_is_rolled_out(stack):
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        assert client.get("/v1/health").status_code == 503
        assert client.post("/v1/match", json=_single(stack)).status_code == 503
        assert client.get("/v1/model").json()["version"] is None

        endpoint = stack.serving.roll_out(stack.registry.get("v1"))

        assert endpoint == stack.url
        assert client.get("/v1/health").json() == {"status": "ok", "model_version": "v1"}
        info = client.get("/v1/model").json()
        assert info["version"] == "v1"
        assert info["lineage"]["dataset_version"] == "ds-test"
        assert info["lineage"]["caused_by"] == "test-v1"
        assert info["training_metrics"] == {"auto_rate@99": 0.5}
        assert client.get("/docs").status_code == 200
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/v1/match", "/v1/match/batch", "/v1/health", "/v1/model"} <= set(paths)


def test_match_over_http_equals_the_model_in_process(stack):
    from cashmatch.domain.match_api import BatchMatchRequest, MatchRequest
    from cashmatch.service_layer.matcher import MatcherService, ServingConfig

    local = MatcherService(stack.registry)
    local.apply(ServingConfig(model_version="v1"))
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        for k in (0, 5, 17):
            body = {"transfer": stack.transfers[k], "open_invoices": stack.invoices}
            answer = client.post("/v1/match", json=body)
            assert answer.status_code == 200, answer.text
            expected = local.match(MatchRequest.model_validate(body))
            assert answer.json() == json.loads(expected.model_dump_json())
        matched = answer.json()
        assert matched["decision"] in ("auto", "review")
        assert matched["model_version"] == "v1"

        batch = {"transfers": stack.transfers[:60], "open_invoices": stack.invoices[:300]}
        answer = client.post("/v1/match/batch", json=batch)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert [r["transfer_id"] for r in body["results"]] == [
            t["transfer_id"] for t in stack.transfers[:60]
        ]
        expected_batch = local.match_batch(BatchMatchRequest.model_validate(batch))
        assert body == json.loads(expected_batch.model_dump_json())
        assert any(r["proposed_invoice_ids"] for r in body["results"])
        owed = {
            i["invoice_id"]: i.get("open_amount") or i["amount"] for i in batch["open_invoices"]
        }
        paid = {t["transfer_id"]: t["amount"] for t in stack.transfers}
        for result in body["results"]:
            allocations = result["allocations"]
            assert [a["invoice_id"] for a in allocations] == result["proposed_invoice_ids"]
            assert all(a["why"] for a in allocations)  # every proposal says why
            # Credit notes are netted in full, invoices take at most what they owe, and the
            # whole never exceeds the transfer (an overpayment stays unallocated).
            assert sum(a["amount"] for a in allocations) <= paid[result["transfer_id"]] + 0.01
            for a in allocations:
                assert (
                    a["amount"] == owed[a["invoice_id"]]
                    if owed[a["invoice_id"]] < 0
                    else (0 <= a["amount"] <= owed[a["invoice_id"]] + 0.005)
                )


def test_concurrent_single_requests_are_batched_without_mixing_answers(stack):
    bodies = [_single(stack, k, 80) for k in range(24)]
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        alone = [client.post("/v1/match", json=b).json() for b in bodies[:6]]
        answers: list[dict] = [{}] * len(bodies)

        def send(k: int) -> None:
            answers[k] = client.post("/v1/match", json=bodies[k]).json()

        threads = [threading.Thread(target=send, args=(k,)) for k in range(len(bodies))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    assert [a["transfer_id"] for a in answers] == [b["transfer"]["transfer_id"] for b in bodies]
    assert answers[:6] == alone


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b["transfer"].pop("amount"), "amount"),
        (lambda b: b["transfer"].update(amount=-5), "amount"),
        (lambda b: b["transfer"].update(booking_date="31/02/2025"), "booking_date"),
        (lambda b: b["transfer"].update(direction="sideways"), "direction"),
        (lambda b: b["open_invoices"][0].update(currency="euro"), "currency"),
        (lambda b: b["open_invoices"][1].update(surprise=1), "surprise"),
        (lambda b: b.update(open_invoices="none"), "open_invoices"),
        # ids a person cannot see or that break a CSV line; an invoice that contradicts itself
        (lambda b: b["transfer"].update(transfer_id="   "), "transfer_id"),
        (lambda b: b["transfer"].update(transfer_id="t\x00"), "transfer_id"),
        (lambda b: b["open_invoices"][0].update(invoice_id="i\n1"), "invoice_id"),
        (lambda b: b["open_invoices"][0].update(due_date="2000-01-01"), "due_date"),
        (lambda b: b["transfer"].update(amount=True), "amount"),
    ],
)
def test_invalid_requests_get_422_naming_the_field(stack, mutate, field):
    body = json.loads(json.dumps(_single(stack)))
    mutate(body)
    answer = httpx.post(f"{stack.url}/v1/match", json=body, timeout=30)
    assert answer.status_code == 422, answer.text
    assert any(field in [str(p) for p in err["loc"]] for err in answer.json()["detail"])


def test_malformed_and_oversize_requests_do_not_hurt_the_replica(stack):
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        garbage = client.post(
            "/v1/match", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert garbage.status_code == 422
        duplicate = _single(stack)
        duplicate["open_invoices"] = [stack.invoices[0], stack.invoices[0]]
        answer = client.post("/v1/match", json=duplicate)
        assert answer.status_code == 422 and "invoice_id" in answer.text

        invoices = [{**i, "invoice_id": f"i{k}"} for k, i in enumerate(stack.invoices * 2)]
        assert len(invoices) > 400
        answer = client.post(
            "/v1/match", json={"transfer": stack.transfers[0], "open_invoices": invoices}
        )
        assert answer.status_code == 413 and "open_invoices" in answer.text
        huge = client.post(
            "/v1/match",
            content=b"[" + b"1," * 300_000 + b"1]",
            headers={"content-type": "application/json"},
        )
        assert huge.status_code == 413
        many = {"transfers": stack.transfers[:101] * 2, "open_invoices": stack.invoices[:10]}
        for k, t in enumerate(many["transfers"]):
            many["transfers"][k] = {**t, "transfer_id": f"t{k}"}
        answer = client.post("/v1/match/batch", json=many)
        assert answer.status_code == 413 and "transfers" in answer.text

        assert client.get("/v1/health").status_code == 200


def test_a_new_version_swaps_in_place_under_load_without_errors(stack):
    before = stack.serving.replica_ids()
    errors: list[str] = []
    seen: list[tuple[float, str]] = []  # (when the request was sent, the version that answered)
    stop = threading.Event()

    def load(k: int) -> None:
        with httpx.Client(base_url=stack.url, timeout=60) as client:
            for _ in range(2000):  # bounded; stopped once the swap is confirmed
                if stop.is_set():
                    return
                sent = time.monotonic()
                answer = client.post("/v1/match", json=_single(stack, k % 20))
                if answer.status_code != 200:
                    errors.append(f"{answer.status_code}: {answer.text[:200]}")
                else:
                    seen.append((sent, answer.json()["model_version"]))

    def answered(count: int, sent_after: float) -> None:
        """Wait (bounded) until `count` requests sent after `sent_after` have their answer."""
        deadline = time.monotonic() + 120
        while sum(at > sent_after for at, _ in list(seen)) < count and not errors:
            assert time.monotonic() < deadline, "the load stopped getting answers"
            time.sleep(0.05)

    threads = [threading.Thread(target=load, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    try:
        answered(12, 0.0)
        stack.serving.roll_out(stack.registry.get("v2"))
        swapped = time.monotonic()
        answered(12, swapped)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)

    assert errors == []
    assert {v for at, v in seen if at < swapped} >= {"v1"}
    # Once the roll-out has returned, every request is answered by the new version.
    after = [v for at, v in seen if at > swapped]
    assert len(after) >= 12 and set(after) == {"v2"}
    assert stack.serving.replica_ids() == before, "the swap replaced replicas"


def test_a_threshold_override_reaches_replicas_in_place_and_survives_a_restart(stack):
    """The guardrail's override travels in user_config: applied under load with no failed
    request, kept by a replica started after it, and gone again with the next plain roll-out."""
    import datetime as dt
    import signal

    from cashmatch.domain.model_records import ThresholdOverride

    version = stack.serving.serving_version()
    record = stack.registry.get(version)
    override = ThresholdOverride(
        threshold=0.999999,
        version=version,
        month="2025-04",
        set_at=dt.datetime.now(dt.UTC),
        by="test",
        reason="a breach in a test",
    )
    errors: list[str] = []
    answers: list[dict] = []
    stop = threading.Event()

    def load(k: int) -> None:
        with httpx.Client(base_url=stack.url, timeout=60) as client:
            for _ in range(2000):
                if stop.is_set():
                    return
                answer = client.post("/v1/match", json=_single(stack, k % 20))
                if answer.status_code != 200:
                    errors.append(f"{answer.status_code}: {answer.text[:200]}")
                else:
                    answers.append(answer.json())

    threads = [threading.Thread(target=load, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        stack.serving.roll_out(record, override)
        applied = len(answers)
        deadline = time.monotonic() + 120
        while len(answers) < applied + 12 and not errors:
            assert time.monotonic() < deadline, "the load stopped getting answers"
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    assert errors == []
    info = httpx.get(f"{stack.url}/v1/model", timeout=30).json()
    assert (info["threshold"], info["threshold_source"]) == (0.999999, override.describe())
    after = answers[applied:]
    assert all(a["decision"] == "review" for a in after if a["confidence"] < 0.999999)

    # A replica that replaces a dead one starts from the same user_config, override included.
    (pid,) = stack.serving.replica_pids().values()
    before = stack.serving.replica_ids()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 180
    while True:
        ids = stack.serving.replica_ids()
        info = stack.serving.model_info() or {}
        if ids and ids != before and info.get("version") == version:
            break
        assert time.monotonic() < deadline, f"no new replica answered (replicas {ids})"
        time.sleep(0.5)
    assert info["threshold_source"] == override.describe()

    # The next roll-out without an override (a new champion's) serves at the model's own.
    stack.serving.roll_out(record)
    info = httpx.get(f"{stack.url}/v1/model", timeout=30).json()
    assert info["threshold_source"] == "model" and info["threshold"] < 0.999999


def test_a_corrupt_artifact_is_refused_and_the_old_model_keeps_answering(stack):
    from cashmatch.adapters.matcher_app import ArtifactRefused
    from cashmatch.domain.errors import PermanentError

    with pytest.raises(ArtifactRefused, match="does not match") as refused:
        stack.serving.roll_out(stack.registry.get("corrupt"))
    assert isinstance(refused.value, PermanentError)  # the deployer parks, never retries it
    # Past the deployer's own check, straight to the replicas: they refuse it too.
    stack.serving.apply("corrupt", fallback_version="v2")
    with pytest.raises(ArtifactRefused, match="refused corrupt"):
        stack.serving.wait_for_version("corrupt")
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        info = client.get("/v1/model").json()
        assert info["version"] == "v2"
        assert info["refused"]["version"] == "corrupt"
        assert "ArtifactDigestMismatch" in info["refused"]["reason"]
        answer = client.post("/v1/match", json=_single(stack))
        assert answer.status_code == 200 and answer.json()["model_version"] == "v2"


@pytest.mark.timeout(900)
def test_the_live_api_answers_what_its_schema_says(stack):
    """Schemathesis against Ray Serve on 127.0.0.1, from the document the matcher serves, every
    check on: no server error, only documented statuses, conforming bodies, schema-violating
    requests refused; valid and mutated requests for every operation."""
    if httpx.get(f"{stack.url}/v1/health", timeout=30).status_code != 200:
        stack.serving.roll_out(stack.registry.get("v1"))
    schema = schemathesis.openapi.from_url(f"{stack.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/match", "/v1/match/batch", "/v1/model"}
    for operation in operations:
        # a GET without parameters has nothing to send wrong: only the bodies are mutated
        post = operation.method.lower() == "post"
        for mode in list(GenerationMode) if post else [GenerationMode.POSITIVE]:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=30,
                deadline=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            def answers_as_documented(case):
                case.call_and_validate(checks=FUZZ_CHECKS)

            answers_as_documented()


def test_rollback_serves_the_old_version_and_moves_both_pointers(stack):
    import typer

    from cashmatch.entrypoints.cli.serving import rollback_command

    registry = stack.registry
    # v1 was the first version served (the first test rolled it out, as the deployer would)
    registry.mark_deployed("v1", endpoint=stack.url, by="test", reason="evaluation passed")
    for version in ("v2", "v3"):
        registry.promote(version, registry.champion()[1], by="test", reason="evaluation passed")
    stack.serving.roll_out(registry.get("v3"))
    registry.mark_deployed("v3", endpoint=stack.url, by="test", reason="evaluation passed")

    for never_served in ("v404", "v2"):
        with pytest.raises(typer.Exit):
            rollback_command(stack.settings, never_served)
    assert registry.champion()[0].version == "v3"
    assert httpx.get(f"{stack.url}/v1/model", timeout=30).json()["version"] == "v3"

    rollback_command(stack.settings, "v1")

    assert httpx.get(f"{stack.url}/v1/model", timeout=30).json()["version"] == "v1"
    champion, deployed = registry.champion()[0], registry.deployed()[0]
    assert (champion.version, deployed.version) == ("v1", "v1")
    assert champion.history[-1].reason == "rolled back from v3"
    assert deployed.history[-1].by == "cli:rollback"


def test_serve_listens_on_loopback_only_and_its_processes_use_the_configured_transport(stack):
    from cashmatch.adapters.local.ray_head import (
        auth_token_path,
        head_processes,
        read_head,
        serve_environment,
    )

    # gRPC unless the environment turns it off (tests/unit/test_local_serving_env.py).
    transport = f"RAY_SERVE_PROXY_USE_GRPC={serve_environment()['RAY_SERVE_PROXY_USE_GRPC']}"
    head = read_head(stack.settings.workspace)
    assert head is not None
    pids = head_processes(head)
    titles = {pid: _read(f"/proc/{pid}/cmdline") for pid in pids}
    proxies = [pid for pid, title in titles.items() if b"ProxyActor" in title]
    replicas = [pid for pid, title in titles.items() if b"ServeReplica:matcher" in title]
    assert proxies and replicas, titles
    token = f"RAY_AUTH_TOKEN_PATH={auth_token_path(stack.settings.workspace)}".encode()
    for pid in proxies + replicas:
        environ = _read(f"/proc/{pid}/environ").split(b"\0")
        assert transport.encode() in environ
        assert b"RAY_AUTH_MODE=token" in environ and token in environ

    listening = _listening_addresses(pids)
    assert any(port == stack.settings.serve_port for _, port in listening), listening
    outside = [(ip, port) for ip, port in listening if not ipaddress.ip_address(ip).is_loopback]
    assert not outside, f"Ray listens beyond loopback: {outside}"


def test_a_client_without_the_workspace_token_cannot_use_the_head(stack, tmp_path):
    from cashmatch.adapters.local.ray_head import read_head

    head = read_head(stack.settings.workspace)
    assert head is not None
    attempt = (
        "import ray\n"
        "from ray._private import ray_constants\n"
        "ray_constants.ENABLE_RAY_CLUSTER = False\n"
        f"ray.init(address={head.address!r}, log_to_driver=False)\n"
        "print('connected')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0", HOME=str(tmp_path)
    )
    # Another local user, with no token (Ray gives up after ~20 s of InvalidAuthToken answers).
    done = subprocess.run(
        [sys.executable, "-c", attempt],
        env={**env, "RAY_AUTH_MODE": "disabled"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "connected" not in done.stdout
    assert "InvalidAuthToken" in done.stderr + done.stdout, done.stderr[-2000:]


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError:  # the process ended meanwhile
        return b""


def _listening_addresses(pids: list[int]) -> list[tuple[str, int]]:
    """(ip, port) of every TCP socket these processes listen on, from /proc (no `ss` needed)."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in _read(table).decode().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            address, port = fields[1].split(":")
            # The kernel prints the address as 32-bit words in host (little-endian) order.
            words = [bytes.fromhex(address[k : k + 8])[::-1] for k in range(0, len(address), 8)]
            ip = ipaddress.ip_address(b"".join(words))
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
                ip = ip.ipv4_mapped
            found.append((str(ip), int(port, 16)))
    return found
