"""The compact "ivfpqfs" kind and the index kind chosen by a memory and recall budget (fashionrec.stores.budget)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np
import pytest

from fashionrec.cli import main
from fashionrec.errors import FashionrecError
from fashionrec.filters import MetadataColumns
from fashionrec.stores import budget as bd
from fashionrec.stores.faiss_store import FaissStore, build_index, new_index, search_settings
from tests.conftest import subset_catalog


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Unit vectors in clusters, so that neighbours mean something."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(4, n // 50), dim)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + 0.3 * rng.standard_normal((n, dim)).astype(np.float32)
    return np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


@pytest.mark.slow
def test_ivfpqfs_is_compact_and_searchable(tmp_path: Path) -> None:
    vectors = clustered(3000, 32)
    index, kind = build_index(vectors, "ivfpqfs")
    assert kind == "ivfpqfs" and isinstance(index, faiss.IndexRefine)
    assert faiss.serialize_index(index).nbytes < 3000 * 32 * 4  # smaller than the float32 vectors
    assert set(search_settings(index)) == {"nprobe", "k_factor"}
    ids = [f"p{i}" for i in range(len(vectors))]
    store = FaissStore(index=index, ids=ids, kind=kind, model=None,
                       meta=MetadataColumns(["colour"], [{"colour": "red" if i % 3 == 0 else "blue"}
                                                         for i in range(len(vectors))]))
    hits = store.search(vectors[:20], k=5)
    assert len(hits) == 20 and all(row[0].id == f"p{n}" and row[0].score > 0.95 for n, row in enumerate(hits))
    red = store.search(vectors[:5], k=10, filters={"colour": ["red"]})
    assert len(red) == 5 and all(len(row) == 10 and all(int(h.id[1:]) % 3 == 0 for h in row) for row in red)
    store.save(tmp_path)
    loaded = FaissStore.load(tmp_path)
    assert loaded.kind == "ivfpqfs" and loaded.search(vectors[7], k=3)[0][0].id == "p7"


def test_ivfpqfs_falls_back_to_exact_on_tiny_catalogues() -> None:
    assert new_index("ivfpqfs", 10, 32)[1] == "flat"


@pytest.mark.slow
def test_tuning_sets_the_cheapest_setting_meeting_the_target_and_is_recorded(tmp_path: Path) -> None:
    vectors = clustered(4000, 32, seed=1)
    index, kind, record = bd.build_within_budget(vectors, "ivfpqfs", bd.Budget(target_recall=0.9), sample=300)
    assert kind == "ivfpqfs" and record["met"] and record["recall_at_10"] >= 0.9
    assert record["search"] == search_settings(index) and record["factory"].endswith("x4fs,Refine(SQ8)")
    assert record["bytes"] == faiss.serialize_index(index).nbytes
    assert record["bytes_per_product"] == pytest.approx(record["bytes"] / 4000, abs=0.1)
    ladder = bd.settings_ladder(index, kind)
    position = ladder.index(record["search"])
    if position:  # the setting before it missed the target
        bd.fs.apply_search_settings(index, ladder[position - 1])
        rows, truth = bd.sample_truth(vectors, 300)
        assert bd.recall(index, vectors[rows], rows, truth) < 0.9
    # recorded in the file, set again on load even though the defaults differ
    store = FaissStore(index=index, ids=[str(i) for i in range(4000)], kind=kind, model=None, build=record)
    store.save(tmp_path)
    loaded = FaissStore.load(tmp_path)
    assert loaded.build == record and search_settings(loaded.index) == record["search"]


def test_a_high_target_raises_the_search_effort() -> None:
    vectors = clustered(3000, 32, seed=2)
    _, _, low = bd.build_within_budget(vectors, "hnsw", bd.Budget(target_recall=0.5), sample=200)
    _, _, high = bd.build_within_budget(vectors, "hnsw", bd.Budget(target_recall=0.99), sample=200)
    assert low["search"]["efSearch"] <= high["search"]["efSearch"]
    assert high["recall_at_10"] >= 0.99 or high["search"]["efSearch"] == bd.EF_SEARCHES[-1]


def test_kind_is_chosen_by_memory_budget() -> None:
    n, dim = 1_000_000, 256
    assert bd.choose_kind(n, dim) == "ivfpqfs"
    assert bd.estimate_bytes("ivfpqfs", n, dim) <= 512 * n  # the compact kind's goal: 512 bytes per product
    assert bd.choose_kind(n, dim, 512 * n) == "ivfpqfs"
    assert bd.choose_kind(n, dim, 4 * dim * n + 2**20, target_recall=1.0) == "flat"
    assert bd.choose_kind(100_000, dim) == "hnsw"
    assert bd.choose_kind(100_000, dim, 500 * 100_000) == "ivfpqfs"  # HNSW's float32 vectors do not fit
    assert bd.choose_kind(1000, dim) == "flat"
    assert bd.candidates(n, 2048)[0] == "pcaivfsq"
    with pytest.raises(FashionrecError, match="no index kind fits"):
        bd.choose_kind(n, dim, 100 * n)
    with pytest.raises(FashionrecError, match="exact search"):
        bd.choose_kind(n, dim, 512 * n, target_recall=1.0)


def test_auto_under_a_budget_falls_back_when_the_target_is_missed() -> None:
    vectors = clustered(6000, 16, seed=3)  # HNSW first by size; a target no approximate index is asked to miss
    _, kind, record = bd.build_within_budget(vectors, "auto", bd.Budget(target_recall=1.0), sample=100)
    assert kind == "flat" and record["recall_at_10"] == 1.0 and record["met"]
    _, kind, record = bd.build_within_budget(vectors, "auto", bd.Budget(bd.parse_size("10MB"), 0.9), sample=200)
    assert kind == "hnsw" and record["met"] and record["bytes"] <= 10**7
    assert record["tried"][0]["kind"] == "hnsw" and record["budget"] == {"max_index_memory": 10**7,
                                                                         "target_recall": 0.9}


def test_sizes_and_recalls_parse_or_fail_clearly() -> None:
    assert bd.parse_size("512MB") == 512 * 10**6 and bd.parse_size("2GiB") == 2 * 2**30
    assert bd.parse_size("300000") == 300000 and bd.parse_size("1.5 kB") == 1500
    for bad in ("abc", "-5MB", "0", "12 parsecs"):
        with pytest.raises(FashionrecError, match="max_index_memory"):
            bd.parse_size(bad)
    assert bd.parse_recall("0.95") == 0.95
    for bad in ("0", "1.5", "x", "nan", "-0.1"):
        with pytest.raises(FashionrecError, match="target_recall"):
            bd.parse_recall(bad)


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--target-recall", "1.5", "target_recall must be"),
    ("--max-index-memory", "lots", "max_index_memory must be"),
    ("--max-index-memory", "1kB", "no index kind fits"),
])
@pytest.mark.slow
def test_bad_budget_is_one_line_and_exit_2(tmp_path: Path, option: str, value: str, message: str) -> None:
    catalog = subset_catalog(tmp_path / "catalog", 12)
    argv = ["index", str(catalog), "--index-dir", str(tmp_path / "index"), "--model", "efficientnet-lite0",
            "--image-size", "64", option, value]
    proc = subprocess.run([sys.executable, "-m", "fashionrec", *argv], check=False, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("fashionrec: error:")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.slow
def test_index_records_the_budgeted_build_and_info_shows_it(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    catalog = subset_catalog(tmp_path / "catalog", 80)
    index_dir = tmp_path / "index"
    assert main(["index", str(catalog), "--index-dir", str(index_dir), "--model", "efficientnet-lite0",
                 "--image-size", "64", "--index-kind", "ivfpqfs", "--max-index-memory", "5MB",
                 "--target-recall", "0.9", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["index_kind"] == "ivfpqfs"
    assert main(["info", "--index-dir", str(index_dir), "--json"]) == 0
    build = json.loads(capsys.readouterr().out)["vector_index"]["build"]
    assert build["kind"] == "ivfpqfs" and build["met"] and build["recall_at_10"] >= 0.9
    assert build["budget"] == {"max_index_memory": 5 * 10**6, "target_recall": 0.9}
    assert set(build["search"]) == {"nprobe", "k_factor"} and build["bytes"] <= 5 * 10**6
    # the budget is kept: a later run without the options (new products, a trained head) is tuned the same way
    stored = FaissStore.load(index_dir)
    assert stored.build is not None and stored.build["budget"]["target_recall"] == 0.9
    assert search_settings(stored.index) == build["search"]


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_the_store_finds_each_product_once_by_its_best_photo(kind: str) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(6, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index, resolved = build_index(vectors, kind)  # type: ignore[arg-type]
    store = FaissStore(index, ["a", "a", "a", "b", "c", "d"], resolved, {}, photos=[0, 1, 2, 0, 0, 0])
    assert len(store) == 4
    for n in range(3):
        hits = store.search(vectors[n], 4)[0]
        assert (hits[0].id, hits[0].photo) == ("a", n) and sorted(h.id for h in hits) == ["a", "b", "c", "d"]
    assert [h.id for h in store.search(vectors[1], 4, exclude={"a"})[0]] == [
        h.id for h in store.search(vectors[1], 4)[0] if h.id != "a"]
    store.remove("a")
    assert len(store) == 3 and store.photos is None and store.ids == ["b", "c", "d"]
    assert [h.id for h in store.search(vectors[0], 4)[0]] == [h.id for h in store.search(vectors[0], 4)[0]] != []
    assert "a" not in {h.id for n in range(6) for h in store.search(vectors[n], 4)[0]}
    store.merge()  # the removed rows were a third of the index: built again without them
    assert store.index.ntotal == 3 and "a" not in {h.id for n in range(6) for h in store.search(vectors[n], 4)[0]}


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_searches_beside_compactions_never_fail_nor_return_removed_products(kind: str) -> None:
    """Removing most of a store starts compactions (the index built again, rows numbered again) while searching."""
    import threading

    import numpy as np

    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(400, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"p{i}" for i in range(400)]
    store = FaissStore.of(ids, vectors, None, kind)  # type: ignore[arg-type]
    removed: set[str] = set()
    errors: list[BaseException] = []
    stop = threading.Event()

    def search() -> None:
        try:
            while not stop.is_set():
                gone = set(removed)
                hits = store.search(vectors[:8], 5)
                assert all(len(row) == 5 for row in hits) and not gone & {h.id for row in hits for h in row}
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=search)
    thread.start()
    try:
        for i in range(300):
            store.remove(f"p{i}")
            removed.add(f"p{i}")
            if i % 50 == 0:
                store.upsert(f"new{i}", vectors[i], {})
    finally:
        stop.set()
        thread.join()
    store.merge()
    assert not errors, errors[0]
    assert len(store) == 106 and store.index.ntotal < 400  # compacted: the removed rows are gone from the index
    assert [store.search(vectors[i], 1)[0][0].id for i in (0, 50, 350)] == ["new0", "new50", "p350"]
