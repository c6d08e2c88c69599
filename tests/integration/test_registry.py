"""The model registry over every blob store: versions and verdicts written once, pointers moved
only by compare-and-swap, rollbacks only to versions that served."""

import datetime as dt
import threading

import pytest

from cashmatch.adapters.local.blobstore import DirectoryBlobStore
from cashmatch.domain.model_records import ModelRecord, Verdict
from cashmatch.ports import PreconditionFailed
from cashmatch.service_layer.registry import ModelRegistry
from cashmatch.settings import Settings
from tests.fakes.models import model_record

pytestmark = pytest.mark.integration
NOW = dt.datetime(2025, 5, 1, tzinfo=dt.UTC)


def record(version: str) -> ModelRecord:
    return model_record(
        version,
        dataset_version="ds-1",
        training_metrics={"loss": 0.1},
        created_at=NOW,
        caused_by="evt-1",
    )


@pytest.fixture(params=["directory", "fake-gcs-server"])
def registry(request, tmp_path, tmp_path_factory):
    """The registry over the directory store and over Cloud Storage (the real client against
    fake-gcs-server, which enforces the generation preconditions itself: no shim)."""
    if request.param == "directory":
        return ModelRegistry(DirectoryBlobStore(tmp_path))
    import uuid

    from cashmatch.adapters.gcp.blobstore import GcsBlobStore
    from tests.fakes.fake_gcs_server import session_fake_gcs_server

    server = session_fake_gcs_server(request.config, tmp_path_factory.getbasetemp())
    return ModelRegistry(
        GcsBlobStore(server.client(), server.bucket, prefix=f"r-{uuid.uuid4().hex}")
    )


def test_register_is_idempotent_and_lineage_is_kept(registry):
    first = registry.register(record("m-1"))
    again = registry.register(record("m-1").model_copy(update={"caused_by": "evt-2"}))
    assert again == first
    assert registry.get("m-1").training_months == ["2025-01", "2025-02"]
    assert [r.version for r in registry.versions()] == ["m-1"]
    with pytest.raises(KeyError, match="m-404"):
        registry.get("m-404")


def test_champion_moves_only_by_compare_and_swap_with_history(registry):
    for v in ("m-1", "m-2", "m-3"):
        registry.register(record(v))
    pointer, generation = registry.champion()
    assert pointer.version is None and generation == 0
    registry.promote("m-1", 0, by="evt-a", reason="first")
    _, generation = registry.champion()
    with pytest.raises(PreconditionFailed):
        registry.promote("m-2", 0, by="evt-b", reason="stale read")
    registry.promote("m-2", generation, by="evt-c", reason="better")
    pointer, _ = registry.champion()
    assert pointer.version == "m-2"
    assert [(h.version, h.previous, h.by) for h in pointer.history] == [
        ("m-1", None, "evt-a"),
        ("m-2", "m-1", "evt-c"),
    ]


def test_two_concurrent_promotions_one_winner(registry):
    for v in ("m-1", "m-2"):
        registry.register(record(v))
    results = {}
    barrier = threading.Barrier(2)

    def promote(v):
        barrier.wait()
        try:
            registry.promote(v, 0, by=v, reason="race")
            results[v] = "won"
        except PreconditionFailed:
            results[v] = "lost"

    threads = [threading.Thread(target=promote, args=(v,)) for v in ("m-1", "m-2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values()) == ["lost", "won"]
    winner = next(v for v, r in results.items() if r == "won")
    assert registry.champion()[0].version == winner


def verdict_of(version: str, *, passed: bool) -> Verdict:
    return Verdict(
        version=version,
        passed=passed,
        reasons=["first"],
        metrics={},
        baseline_metrics={},
        champion_version=None,
        champion_metrics=None,
        decided_at=NOW,
        event_id="e1",
        caused_by="c1",
    )


def test_verdict_is_written_once(registry):
    registry.register(record("m-1"))
    verdict = verdict_of("m-1", passed=True)
    assert registry.record_verdict(verdict) == verdict
    second = verdict.model_copy(update={"passed": False, "event_id": "e2"})
    assert registry.record_verdict(second) == verdict
    assert registry.verdict("m-1") == verdict
    assert registry.verdict("m-2") is None


def test_mark_deployed_records_endpoint_and_cause(registry):
    registry.register(record("m-1"))
    registry.mark_deployed("m-1", endpoint="http://127.0.0.1:8000", by="evt-d", reason="passed")
    registry.mark_deployed("m-1", endpoint="http://127.0.0.1:8000", by="evt-d2", reason="again")
    pointer, _ = registry.deployed()
    assert pointer.version == "m-1"
    assert len(pointer.history) == 1
    assert registry.describe()["deployed"] == "m-1"


def test_rollback_moves_champion_and_deployed_back_with_history(registry):
    from cashmatch.entrypoints.cli.serving import roll_back
    from cashmatch.service_layer.serving import NoServing

    for v in ("m-1", "m-2"):
        registry.register(record(v))
    registry.promote("m-1", 0, by="evt-1", reason="first")
    registry.mark_deployed("m-1", endpoint="e", by="evt-1", reason="passed")
    registry.promote("m-2", registry.champion()[1], by="evt-2", reason="better")
    registry.mark_deployed("m-2", endpoint="e", by="evt-2", reason="passed")
    roll_back(registry, NoServing(), "m-1", by="cli:rollback", settings=Settings())
    champion, _ = registry.champion()
    deployed, _ = registry.deployed()
    assert champion.version == deployed.version == "m-1"
    assert champion.history[-1].by == deployed.history[-1].by == "cli:rollback"
    assert champion.history[-1].previous == "m-2"
    with pytest.raises(KeyError):
        roll_back(registry, NoServing(), "m-404", by="cli:rollback", settings=Settings())


def test_rollback_never_brings_in_a_version_that_was_not_served(registry):
    from cashmatch.entrypoints.cli.serving import roll_back
    from cashmatch.service_layer.serving import NoServing

    for v in ("m-1", "m-2", "m-3"):
        registry.register(record(v))
    registry.promote("m-1", 0, by="evt-1", reason="first")
    registry.mark_deployed("m-1", endpoint="e", by="evt-1", reason="passed")
    registry.record_verdict(verdict_of("m-2", passed=False))
    for version, said in (("m-2", "m-2 was rejected"), ("m-3", "m-3 was never deployed")):
        with pytest.raises(KeyError, match=said):
            roll_back(registry, NoServing(), version, by="cli:rollback", settings=Settings())
    assert registry.champion()[0].version == registry.deployed()[0].version == "m-1"


def test_every_path_to_traffic_goes_through_the_release_gate(registry):
    """With approvals required, neither `serve` nor `rollback` puts an unapproved (or rejected)
    version in front of traffic; the deployer's path is tested with the chain
    (tests/integration/test_chain_in_process.py::test_approval_gate_*)."""
    from cashmatch.domain.model_records import Approval
    from cashmatch.entrypoints.cli.serving import roll_back, servable_version
    from cashmatch.service_layer.serving import NoServing

    gated = Settings(approval_required=True)
    for v in ("m-1", "m-2"):
        registry.register(record(v))
    # serve: a champion nobody approved is not served; approved, it is
    registry.promote("m-1", 0, by="evt-1", reason="first")
    version, held = servable_version(registry, gated)
    assert (
        version is None
        and held == "not serving the champion: m-1 waits for approval: cashmatch approve m-1"
    )
    assert servable_version(registry, Settings()) == ("m-1", None)
    registry.record_approval(Approval(version="m-1", approved=True, by="ana", reason="ok", at=NOW))
    assert servable_version(registry, gated) == ("m-1", None)
    # rollback: a version served before, but rejected by a person since, does not come back
    registry.mark_deployed("m-1", endpoint="e", by="evt-1", reason="passed")
    registry.promote("m-2", registry.champion()[1], by="evt-2", reason="better")
    registry.record_approval(Approval(version="m-2", approved=True, by="ana", reason="ok", at=NOW))
    registry.mark_deployed("m-2", endpoint="e", by="evt-2", reason="passed")
    registry.blobs.delete("registry/approvals/m-1.json")
    registry.record_approval(Approval(version="m-1", approved=False, by="bo", reason="bad", at=NOW))
    with pytest.raises(KeyError, match="m-1 not rolled out: rejected by bo: bad"):
        roll_back(registry, NoServing(), "m-1", by="cli:rollback", settings=gated)
    assert registry.deployed()[0].version == "m-2"


def test_a_rollback_never_builds_a_serving_image(monkeypatch, tmp_path):
    """`cashmatch rollback` bootstraps its serving with builds off: it changes which version
    serves, never the code (which on GKE would come from wherever the command runs)."""
    import cashmatch.entrypoints.cli.serving as serving_cli

    seen = []

    def fake_bootstrap(settings):
        seen.append(settings.serving_build)
        raise RuntimeError("stop here")

    monkeypatch.setattr(serving_cli, "bootstrap", fake_bootstrap)
    with pytest.raises(RuntimeError, match="stop here"):
        serving_cli.rollback_command(Settings(workspace=tmp_path, serving_build="auto"), "m-1")
    assert seen == ["never"]
