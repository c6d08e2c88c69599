"""One contract for every BlobStore adapter: the directory store, and the Cloud Storage adapter
through the real client against two emulators: fake-gcs-server, which enforces generation
preconditions itself (so compare-and-swap is proven against a server that is not ours), and
gcp-storage-emulator, which the gcp chain tests use (with the test-side 412 guard it lacks)."""

import threading

import pytest

from cashmatch.adapters.local.blobstore import DirectoryBlobStore
from cashmatch.ports import BlobNotFound, BlobStore, PreconditionFailed

pytestmark = pytest.mark.integration


@pytest.fixture(params=["directory", "fake-gcs-server", "gcp-storage-emulator"])
def store(request, tmp_path, tmp_path_factory) -> BlobStore:
    import uuid

    if request.param == "directory":
        return DirectoryBlobStore(tmp_path / "blobs")
    if request.param == "fake-gcs-server":
        from cashmatch.adapters.gcp.blobstore import GcsBlobStore
        from tests.fakes.fake_gcs_server import session_fake_gcs_server

        server = session_fake_gcs_server(request.config, tmp_path_factory.getbasetemp())
        return GcsBlobStore(server.client(), server.bucket, prefix=f"t-{uuid.uuid4().hex}")
    if request.param == "gcp-storage-emulator":
        # Cloud Storage through the real client against gcp-storage-emulator (with the 412
        # guard it lacks); each test gets its own folder of the session's bucket.
        from cashmatch.adapters.gcp.blobstore import GcsBlobStore
        from tests.fakes.gcs_emulator import session_gcs_emulator

        emulator = session_gcs_emulator(request.config)
        return GcsBlobStore(emulator.client(), emulator.bucket, prefix=f"t-{uuid.uuid4().hex}")
    raise AssertionError(request.param)


def test_put_get_round_trip_with_growing_generations(store):
    g1 = store.put("a/b.txt", b"one")
    blob = store.get("a/b.txt")
    assert blob.data == b"one"
    assert blob.generation == g1
    g2 = store.put("a/b.txt", b"two")
    assert g2 > g1
    assert store.get("a/b.txt") == type(blob)(b"two", g2)


def test_missing_object(store):
    with pytest.raises(BlobNotFound):
        store.get("nope")
    assert not store.exists("nope")
    store.delete("nope")  # absent is fine


def test_only_if_absent(store):
    store.put("k", b"first", if_generation_match=0)
    with pytest.raises(PreconditionFailed):
        store.put("k", b"second", if_generation_match=0)
    assert store.get("k").data == b"first"


def test_stale_generation_is_refused(store):
    g1 = store.put("k", b"v1")
    store.put("k", b"v2", if_generation_match=g1)
    with pytest.raises(PreconditionFailed):
        store.put("k", b"v3", if_generation_match=g1)
    assert store.get("k").data == b"v2"


def test_compare_and_swap_has_exactly_one_winner(store):
    generation = store.put("pointer", b"start")
    winners, losers = [], []
    barrier = threading.Barrier(8)

    def contend(i):
        barrier.wait()
        try:
            store.put("pointer", f"w{i}".encode(), if_generation_match=generation)
            winners.append(i)
        except PreconditionFailed:
            losers.append(i)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    assert len(losers) == 7
    assert store.get("pointer").data == f"w{winners[0]}".encode()


def test_list_by_prefix_and_uri_round_trip(store):
    for key in ["d/2.txt", "d/1.txt", "e/1.txt", "dx.txt"]:
        store.put(key, b".")
    assert store.list("d/") == ["d/1.txt", "d/2.txt"]
    assert store.list("d") == ["d/1.txt", "d/2.txt", "dx.txt"]
    uri = store.uri("d/1.txt")
    assert store.key_from_uri(uri) == "d/1.txt"
    with pytest.raises(ValueError):
        store.key_from_uri("s3://elsewhere/d/1.txt")
    store.delete("d/1.txt")
    assert store.list("d/") == ["d/2.txt"]


def test_keys_cannot_escape_the_store(store):
    for bad in ["../x", "/abs", "a/../../x", ""]:
        with pytest.raises(ValueError):
            store.put(bad, b"x")


def test_readers_never_see_half_a_file(store):
    big_a, big_b = b"a" * 2_000_000, b"b" * 2_000_000
    store.put("big", big_a)
    stop = threading.Event()
    seen = set()

    def read():
        while not stop.is_set():
            data = store.get("big").data
            seen.add(data[:1] + data[-1:])

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(20):
        store.put("big", big_b if i % 2 == 0 else big_a)
    stop.set()
    reader.join()
    assert seen <= {b"aa", b"bb"}
