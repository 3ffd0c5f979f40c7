"""Training the projection head on a small index of the demo catalogue: head-space vectors published
deterministically, kill safety, photo-like views cached, resumed and pruned."""

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

from fashionrec.errors import FashionrecError
from fashionrec.head import HEAD_FILE, Head
from fashionrec.indexing import index_catalog
from fashionrec.recommend import Recommender
from fashionrec.split import is_held_out
from fashionrec.train import AUGMENT_DIR, TrainConfig, train_index
from tests.conftest import CLI_ENV, DEMO_QUERIES, FAST_MODEL, SMALL

SMALL_FLAGS = ["--epochs", "3", "--hidden", "32", "--dim", "16", "--holdout", "0.2", "--seed", "3"]


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
