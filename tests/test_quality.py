"""Projection head, training, evaluation, hybrid ranking and trends on a small index of the demo catalogue.

The index holds 120 demo products embedded with the fast model (lite0 at 128 px); the head is tiny, so every test
here runs in seconds. Quality numbers come from benchmarks/quality.py, not from these tests.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from fashionrec.api import ApiSettings, create_app
from fashionrec.catalog_db import CatalogDB
from fashionrec.cli import main
from fashionrec.errors import FashionrecError, IndexFormatError
from fashionrec.evaluate import ranking_metrics
from fashionrec.head import HEAD_FILE, Head
from fashionrec.hybrid import CONSENSUS_TEMPERATURE, consensus_shares, rerank
from fashionrec.indexing import index_catalog
from fashionrec.recommend import MAX_K, Recommender, Result
from fashionrec.split import is_held_out
from fashionrec.train import AUGMENT_DIR, TrainConfig, train_index
from tests.conftest import CLI_ENV, DEMO_QUERIES, FAST_MODEL

SMALL = TrainConfig(epochs=3, hidden=32, dim=16, batch_size=32, holdout=0.2, seed=3)
SMALL_FLAGS = ["--epochs", "3", "--hidden", "32", "--dim", "16", "--holdout", "0.2", "--seed", "3"]


@pytest.fixture(scope="module")
def base_index(catalog_120: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from the model spec (not a passed embedder), so its ONNX export is cached inside it and every copy
    opens without exporting again."""
    index_dir = tmp_path_factory.mktemp("quality-index")
    index_catalog(catalog_120, index_dir, model=FAST_MODEL, progress=False)
    return index_dir


@pytest.fixture(scope="module")
def trained_index(base_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    index_dir = tmp_path_factory.mktemp("trained") / "index"
    shutil.copytree(base_index, index_dir)
    train_index(index_dir, SMALL, progress=False)
    return index_dir


def test_head_applies_in_numpy_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    weights = {"w1": rng.normal(size=(8, 6)), "b1": rng.normal(size=6), "w2": rng.normal(size=(6, 4)),
               "b2": rng.normal(size=4)}
    head = Head({k: v.astype(np.float32) for k, v in weights.items()}, {"holdout_ids": ["a", "b"]})
    out = head.apply(rng.normal(size=(5, 8)))
    assert out.shape == (5, 4) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    x = rng.normal(size=(2, 8))
    blended = Head(head.weights, {"backbone_weight": 2.0})  # cosine = (4 backbone cosine + MLP cosine) / 5
    raw = x / np.linalg.norm(x, axis=1, keepdims=True)
    expected = (4 * raw[0] @ raw[1] + head.apply(x)[0] @ head.apply(x)[1]) / 5
    assert blended.apply(x)[0] @ blended.apply(x)[1] == pytest.approx(expected, abs=1e-5)
    head.save(tmp_path)
    loaded = Head.load(tmp_path)
    assert loaded.fingerprint == head.fingerprint and loaded.holdout_ids == ["a", "b"]
    np.testing.assert_array_equal(loaded.apply(np.eye(8)), head.apply(np.eye(8)))


@pytest.mark.parametrize("damage", ["flip", "truncate", "foreign"])
def test_damaged_or_foreign_head_file_is_an_index_format_error(tmp_path: Path, damage: str) -> None:
    head = Head({"w1": np.ones((4, 3), np.float32), "b1": np.zeros(3, np.float32), "w2": np.ones((3, 2), np.float32),
                 "b2": np.zeros(2, np.float32)})
    path = head.save(tmp_path)
    data = bytearray(path.read_bytes())
    if damage == "flip":  # a weight changed inside a valid archive: only the checksum can tell
        arrays = dict(np.load(path))
        arrays["w1"] = arrays["w1"] * 2
        np.savez(path, **arrays)
    elif damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:
        np.savez(path, something=np.arange(3))
    with pytest.raises(IndexFormatError):
        Head.load(tmp_path)


def test_train_publishes_head_space_vectors_and_is_deterministic(base_index: Path, trained_index: Path,
                                                                 tmp_path: Path) -> None:
    head = Head.load(trained_index)
    with Recommender.open(trained_index) as rec:
        # the held-out products are exactly those the shared hash split picks (seed 3, 20 %), and only those
        assert sorted(head.holdout_ids) == sorted(i for i in rec.store.ids if is_held_out(i, 0.2, 3))
        assert 0 < len(head.holdout_ids) < 120 and head.dim == 16 + rec.embedder.dim  # MLP output + backbone
        assert rec.store.dim == head.dim and rec.store.model["head"] == head.fingerprint
        item_id = rec.store.ids[0]
        similar = rec.similar(item_id, k=5)
        assert len(similar) == 5 and item_id not in {r.id for r in similar}
        expected = rec.head.apply(rec.db.vector(item_id)[None])  # the head-space vector, not the raw feature
        found = rec.store.search(expected, 1)[0][0]
        assert found.id == item_id and found.score == pytest.approx(1, abs=1e-4)
        assert len(rec.recommend(min(DEMO_QUERIES.glob("*.jpg")), k=3)) == 3
    again = tmp_path / "again"
    shutil.copytree(base_index, again)
    train_index(again, SMALL, progress=False)
    assert Head.load(again).fingerprint == head.fingerprint  # same seed, same head


def test_open_refuses_vectors_published_with_another_head(
    trained_index: Path, tmp_path: Path, catalog_120: Path
) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(trained_index, index_dir)
    other = Head.load(index_dir)
    other.weights["b2"] = other.weights["b2"] + 1
    other.save(index_dir)  # a new head whose vectors were never published (train killed between the two writes)
    with pytest.raises(IndexFormatError, match="re-run `fashionrec index`"):
        Recommender.open(index_dir)
    index_catalog(catalog_120, index_dir, model=FAST_MODEL, progress=False)  # nothing to embed; re-publishes
    with Recommender.open(index_dir) as rec:
        assert rec.store.model["head"] == other.fingerprint


def test_ranking_metrics_by_hand() -> None:
    m = ranking_metrics([True, False, True, False, False, False, False, False, False, False], n_relevant=2)
    assert m["P@1"] == 1 and m["P@5"] == pytest.approx(0.4) and m["hit@5"] == 1
    assert m["mAP@10"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["nDCG@10"] == pytest.approx((1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3)))
    assert ranking_metrics([False] * 10, n_relevant=3)["mAP@10"] == 0


def test_hybrid_moves_preferred_products_up_and_weight_zero_is_image_only(trained_index: Path) -> None:
    with Recommender.open(trained_index) as rec:
        item_id = rec.store.ids[5]
        rec.hybrid_weight = 0
        plain = rec.similar(item_id, k=10)
        colour = plain[-1].metadata["baseColour"]
        rec.hybrid_weight = 0.1
        assert [r.id for r in rec.similar(item_id, k=10, prefer={})] == [r.id for r in plain]
        rec.hybrid_weight = 5
        preferred = rec.similar(item_id, k=10, prefer={"baseColour": colour})
        agreeing = [r.metadata["baseColour"] == colour for r in preferred]
        assert agreeing == sorted(agreeing, reverse=True)  # every agreeing product ranks above every other
        assert sum(agreeing) >= sum(r.metadata["baseColour"] == colour for r in plain)
        with pytest.raises(FashionrecError, match="unknown preference column"):
            rec.similar(item_id, prefer={"nope": "x"})


def test_hybrid_reranks_even_when_k_is_the_whole_pool(trained_index: Path) -> None:
    """k = MAX_K makes the pool no larger than k; the preferences must still re-rank it."""
    with Recommender.open(trained_index) as rec:
        rec.hybrid_weight = 5
        item_id = rec.store.ids[5]
        colour = rec.similar(item_id, k=10)[-1].metadata["baseColour"]
        ranked = rec.similar(item_id, k=MAX_K, prefer={"baseColour": colour})
        agreeing = [r.metadata["baseColour"] == colour for r in ranked]
        assert len(agreeing) == len(rec) - 1 and agreeing == sorted(agreeing, reverse=True)


def test_consensus_shares_and_rerank_by_hand() -> None:
    def result(item_id: str, score: float, kind: str) -> Result:
        return Result(item_id, score, {"articleType": kind} if kind else {})

    pool = [result("a1", 0.90, "A"), result("b1", 0.89, "B"), result("b2", 0.88, "B"), result("x", 0.875, ""),
            result("b3", 0.87, "B"), result("a2", 0.50, "A")]
    shares = consensus_shares(pool, "articleType")
    vote_b = sum(np.exp((s - 0.90) / CONSENSUS_TEMPERATURE) for s in (0.89, 0.88, 0.87))
    vote_a = 1 + np.exp(-0.40 / CONSENSUS_TEMPERATURE)
    assert shares == pytest.approx({"A": vote_a / (vote_a + vote_b), "B": vote_b / (vote_a + vote_b)})
    assert [r.id for r in rerank(pool, 6, consensus=0.0)] == [r.id for r in pool]
    top = rerank(pool, 4, consensus=1.0)
    assert [r.id for r in top] == ["b1", "b2", "b3", "a1"]  # the majority kind first, in image order
    assert top[0].score == pytest.approx(0.89 + shares["B"])
    assert [r.id for r in rerank(pool, 2, consensus=1.0, column="nope")] == ["a1", "b1"]  # no votes: image order


def test_consensus_puts_the_neighbours_kind_first_and_zero_is_image_only(trained_index: Path) -> None:
    with Recommender.open(trained_index) as rec:
        item_id = rec.store.ids[7]
        plain = rec.similar(item_id, k=len(rec) - 1)
        shares = consensus_shares(plain, "articleType")
        winner = max(shares, key=shares.__getitem__)
        assert 0 < shares[winner] < 1  # the vote is not unanimous, so there is something to re-rank
        rec.consensus_weight = 10
        voted = rec.similar(item_id, k=20)
        of_winner = [r.id for r in plain if r.metadata["articleType"] == winner]
        assert [r.id for r in voted[: len(of_winner)]] == of_winner[:20]  # the voted kind first, in image order
        rec.consensus_weight = 0
        assert [r.id for r in rec.similar(item_id, k=20)] == [r.id for r in plain[:20]]


def test_api_prefer_parameter(trained_index: Path) -> None:
    with Recommender.open(trained_index) as rec:
        client = TestClient(create_app(rec, settings=ApiSettings()))
        item_id = rec.store.ids[5]
        colour = rec.db.get(item_id).metadata["baseColour"]
        answer = client.get(f"/api/items/{item_id}/similar", params={"k": 5, "prefer": f"baseColour={colour}"})
        assert answer.status_code == 200 and len(answer.json()["results"]) == 5
        assert client.get(f"/api/items/{item_id}/similar", params={"prefer": "nope=x"}).status_code == 400
        photo = min(DEMO_QUERIES.glob("*.jpg")).read_bytes()
        answer = client.post("/api/recommend", params={"k": 3, "prefer": "gender=Women"},
                             files={"file": ("p.jpg", photo, "image/jpeg")})
        assert answer.status_code == 200 and len(answer.json()["results"]) == 3


def test_api_consensus_parameter(trained_index: Path) -> None:
    with Recommender.open(trained_index) as rec:
        client = TestClient(create_app(rec, settings=ApiSettings()))
        item_id = rec.store.ids[7]
        answer = client.get(f"/api/items/{item_id}/similar", params={"k": 10, "consensus": 10})
        assert answer.status_code == 200
        assert [r["id"] for r in answer.json()["results"]] == [r.id for r in rec.similar(item_id, 10, consensus=10)]
        assert client.get(f"/api/items/{item_id}/similar", params={"consensus": 11}).status_code == 422
        photo = min(DEMO_QUERIES.glob("*.jpg")).read_bytes()
        answer = client.post("/api/recommend", params={"k": 10, "consensus": 10},
                             files={"file": ("p.jpg", photo, "image/jpeg")})
        kinds = [r["metadata"]["articleType"] for r in answer.json()["results"]]
        assert answer.status_code == 200 and kinds == sorted(kinds, key=lambda t: t != kinds[0])
        rec.consensus_column = "nope"
        answer = client.get(f"/api/items/{item_id}/similar", params={"consensus": 0.5})
        assert answer.status_code == 400 and "consensus column 'nope'" in answer.json()["error"]
        assert client.get(f"/api/items/{item_id}/similar").status_code == 200  # off: the column is not needed


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the command line in this process (no interpreter start-up per call): exit status, stdout, stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def holdout_p5_by_hand(index_dir: Path) -> float:
    """Mean P@5 of the held-out products, each searched by brute force among the others in the head's space (a
    result is relevant when its articleType is the query's): what ``evaluate``'s image-only run must report."""
    head = Head.load(index_dir)
    with Recommender.open(index_dir) as rec:
        ids, features = rec.db.vectors(rec.embedder.dim)
        items = rec.db.get_many(ids)
    kinds = [items[i].metadata["articleType"] for i in ids]
    vectors = head.apply(features)
    held = set(head.holdout_ids)
    searched = np.array([n for n, i in enumerate(ids) if i not in held])
    precisions = []
    for n, item_id in enumerate(ids):
        if item_id in held:
            top = searched[np.argsort(-(vectors[searched] @ vectors[n]), kind="stable")[:5]]
            precisions.append(sum(kinds[m] == kinds[n] for m in top) / 5)
    assert len(precisions) == len(held)
    return float(np.mean(precisions))


def test_cli_evaluate_holdout_hybrid_and_report(
    trained_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "evaluate", "--index-dir", str(trained_index), "--hybrid", "gender,baseColour",
                         "--json", "--report", str(tmp_path / "report"))
    assert code == 0, err
    result = json.loads(out)
    assert result["protocol"] == "holdout" and len(result["runs"]) == 2
    image_only = result["runs"]["image-only"]
    held = len(Head.load(trained_index).holdout_ids)
    assert image_only["queries"] == held and image_only["searched"] == 120 - held  # queries never in the searched index
    assert "agree_gender@5" in image_only["metrics"]
    assert image_only["metrics"]["P@5"] == pytest.approx(holdout_p5_by_hand(trained_index), abs=1e-4)
    assert (tmp_path / "report" / "p5_by_group.png").stat().st_size > 1000
    assert f"| image-only | {held} |" in (tmp_path / "report" / "report.md").read_text()


def test_cli_evaluate_photos_and_errors(
    trained_index: Path, base_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = tmp_path / "photos"
    for n, photo in enumerate(sorted(DEMO_QUERIES.glob("*.jpg"))[:2]):
        (photos / f"class{n}").mkdir(parents=True)
        shutil.copy(photo, photos / f"class{n}")
    (tmp_path / "mapping.json").write_text(json.dumps({"class0": ["Tshirts"], "class1": ["Shirts", "Tops"]}))
    code, out, err = cli(capsys, "evaluate", "--index-dir", str(trained_index), "--photos", str(photos),
                         "--mapping", str(tmp_path / "mapping.json"), "--json")
    assert code == 0, err
    run = json.loads(out)["runs"]["image-only"]
    assert run["queries"] == 2 and run["searched"] == 120 and set(run["groups"]) == {"class0", "class1"}
    code, _, err = cli(capsys, "evaluate", "--index-dir", str(base_index))
    assert code == 2 and err.startswith("fashionrec: error: no held-out products recorded") and err.count("\n") == 1
    code, _, err = cli(capsys, "evaluate", "--index-dir", str(trained_index), "--photos", str(photos))
    assert code == 2 and err.count("\n") == 1 and "--mapping" in err


def test_cli_trends_writes_json_and_charts(
    base_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "trends", "--index-dir", str(base_index), "--out", str(tmp_path), "--json")
    assert code == 0, err
    trends = json.loads(out)
    assert trends == json.loads((tmp_path / "trends.json").read_text()) and trends["items"] == 120
    colours = next(c for c in trends["charts"] if c["column"] == "baseColour")
    assert len(colours["counts"]) <= 10 and sum(c["count"] for c in colours["counts"]) + colours["other"] == 120
    assert {"gender.png", "baseColour.png", "season.png", "year.png"} <= {p.name for p in tmp_path.glob("*.png")}


def _train_cmd(index_dir: Path, epochs: int) -> list[str]:
    flags = SMALL_FLAGS[:]
    flags[1] = str(epochs)
    return [sys.executable, "-m", "fashionrec", "train", "--index-dir", str(index_dir), *flags, "--json"]


@pytest.mark.slow
def test_train_killed_at_random_points_leaves_a_usable_index(trained_index: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(trained_index, index_dir)
    rng = random.Random(11)
    for delay in sorted(rng.uniform(0.2, 3.0) for _ in range(3)):
        proc = subprocess.Popen(_train_cmd(index_dir, 3000), env=CLI_ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        Head.load(index_dir)  # never half a file
        try:
            Recommender.open(index_dir).close()
        except FashionrecError as exc:
            assert "fashionrec index" in str(exc), exc
    finished = subprocess.run(_train_cmd(index_dir, 2), env=CLI_ENV, capture_output=True, text=True,
                              timeout=120, check=False)
    assert finished.returncode == 0, finished.stderr
    with Recommender.open(index_dir) as rec:
        assert rec.store.model["head"] == json.loads(finished.stdout)["head_fingerprint"]
    assert (index_dir / HEAD_FILE).is_file()


def test_photo_like_views_are_cached_resumed_and_pruned(base_index: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    config = TrainConfig(**{**SMALL.__dict__, "augment_views": 2})
    clean = tmp_path / "clean"
    shutil.copytree(base_index, clean)
    first = train_index(clean, config, progress=False)
    assert len(list((clean / AUGMENT_DIR).glob("view*.npz"))) == 2  # one chunk per view at this size
    assert Head.load(clean).meta["augmented_views"] == first.views == 2 * first.trained_on
    assert first.views_unreadable == 0 and f"+ {first.views} photo-like views" in first.summary()

    killed = tmp_path / "killed"
    shutil.copytree(base_index, killed)
    command = [*_train_cmd(killed, 3), "--augment-views", "2"]
    proc = subprocess.Popen(command, env=CLI_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list((killed / AUGMENT_DIR).glob("view0-*.npz")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.kill()  # most likely while the second view is being embedded
    proc.wait()
    subprocess.run(command, env=CLI_ENV, capture_output=True, text=True, timeout=180, check=True)
    files = sorted(p.name for p in (clean / AUGMENT_DIR).glob("*.npz"))
    assert sorted(p.name for p in (killed / AUGMENT_DIR).glob("*.npz")) == files  # resumed to the same views
    for name in files:
        with np.load(clean / AUGMENT_DIR / name) as a, np.load(killed / AUGMENT_DIR / name) as b:
            assert np.array_equal(a["rows"], b["rows"])
            np.testing.assert_allclose(a["features"], b["features"], atol=1e-5)

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached view was embedded again")

    monkeypatch.setattr("fashionrec.modelspec.ModelSpec.build", no_model)
    assert train_index(clean, config, progress=False).head_fingerprint == first.head_fingerprint
    train_index(clean, TrainConfig(**{**SMALL.__dict__, "augment_views": 0}), progress=False)
    assert not list((clean / AUGMENT_DIR).glob("*.npz"))  # views no training uses any more are removed


def test_views_of_images_gone_since_indexing_are_counted_not_fatal(catalog_120: Path, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    shutil.copytree(catalog_120, catalog)
    index_dir = tmp_path / "index"
    index_catalog(catalog, index_dir, model=FAST_MODEL, progress=False)
    gone = sorted((catalog / "images").glob("*.jpg"))[:10]
    for path in gone:
        path.unlink()
    result = train_index(index_dir, SMALL, progress=False)
    held = set(Head.load(index_dir).holdout_ids)
    lost = sum(p.stem not in held for p in gone)
    assert lost and (result.views, result.views_unreadable) == (result.trained_on - lost, lost)
    assert f"{lost} images unreadable" in result.summary()


def test_milvus_publishes_head_space_vectors(trained_index: Path, tmp_path: Path) -> None:
    pytest.importorskip("pymilvus")
    from fashionrec.stores.milvus_store import MilvusPublisher, MilvusStore

    index_dir = tmp_path / "index"
    shutil.copytree(trained_index, index_dir)
    uri = str(tmp_path / "m.db")
    db = CatalogDB(index_dir)
    try:
        MilvusPublisher(uri)(db, index_dir, json.loads(db.get_setting("model")))
    finally:
        db.close()
    with Recommender.open(index_dir) as faiss_rec, Recommender.open(
        index_dir, store=MilvusStore.for_index(index_dir, uri)
    ) as milvus_rec:
        assert milvus_rec.store.model["head"] == faiss_rec.head.fingerprint
        item_id = faiss_rec.store.ids[3]
        assert [r.id for r in milvus_rec.similar(item_id, k=5)] == [r.id for r in faiss_rec.similar(item_id, k=5)]


def test_cli_recommend_prefer(trained_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo = str(min(DEMO_QUERIES.glob("*.jpg")))
    args = ["recommend", photo, "--index-dir", str(trained_index), "-k", "10", "--json"]
    code, out, err = cli(capsys, *args, "--prefer", "gender=Women", "--hybrid-weight", "5")
    assert code == 0, err
    genders = [r["gender"] for r in json.loads(out)["results"]]
    assert len(genders) == 10 and genders == sorted(genders, key=lambda g: g != "Women")  # preferred ones first
    code, _, err = cli(capsys, *args, "--prefer", "gender")
    assert code == 2 and "bad preference" in err
    code, _, err = cli(capsys, *args, "--hybrid-weight", "-1")
    assert code == 2 and "hybrid weight must be between 0 and 10" in err


def test_cli_consensus_options(trained_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo = str(min(DEMO_QUERIES.glob("*.jpg")))
    args = ["recommend", photo, "--index-dir", str(trained_index), "-k", "10", "--json"]
    code, out, err = cli(capsys, *args, "--consensus", "10")
    assert code == 0, err
    results = json.loads(out)["results"]
    kinds = [r["articleType"] for r in results]
    assert kinds == sorted(kinds, key=lambda t: t != kinds[0])  # the voted kind first
    with Recommender.open(trained_index) as rec:
        rec.consensus_weight = 10
        assert [r["id"] for r in results] == [r.id for r in rec.recommend(photo, k=10)]
    code, _, err = cli(capsys, *args, "--consensus", "0.5", "--consensus-column", "nope")
    assert code == 2 and err.count("\n") == 1 and "consensus column 'nope' is not in the index" in err
    with pytest.raises(SystemExit) as exited:
        cli(capsys, *args, "--consensus", "x")
    assert exited.value.code == 2 and "invalid float value" in capsys.readouterr().err
    code, _, err = cli(capsys, *args, "--consensus", "11")
    assert code == 2 and "consensus weight must be between 0 and 10" in err
    code, out, err = cli(capsys, "evaluate", "--index-dir", str(trained_index), "--consensus", "0.5", "--json")
    assert code == 0, err
    runs = json.loads(out)["runs"]
    assert set(runs) == {"consensus (articleType, w=0.5)", "image-only"}
    held = len(Head.load(trained_index).holdout_ids)
    assert all(run["queries"] == held and run["searched"] == 120 - held for run in runs.values())
