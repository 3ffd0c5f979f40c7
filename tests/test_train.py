"""Training the projection head on a small index of the demo catalogue: head-space vectors published
deterministically, kill safety, photo-like views cached, resumed and pruned."""

from __future__ import annotations

import json
import math
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fashionrec import train as train_module
from fashionrec.cli import main
from fashionrec.errors import FashionrecError
from fashionrec.head import HEAD_FILE, Head
from fashionrec.indexing import index_catalog
from fashionrec.kinds import NEIGHBOUR_WEIGHT
from fashionrec.manifest import Manifest
from fashionrec.recommend import Recommender
from fashionrec.split import is_held_out, is_validation_photo
from fashionrec.train import (
    AUGMENT_DIR,
    BLEND_WEIGHT,
    PHOTO_DIR,
    STREET_CROPS_DIR,
    TrainConfig,
    default_backbone_weight,
    set_targets,
    train_index,
)
from tests.conftest import CLI_ENV, DEMO_QUERIES, FAST_MODEL, SMALL, street_folder

SMALL_FLAGS = ["--epochs", "3", "--hidden", "32", "--dim", "16", "--holdout", "0.2", "--seed", "3"]


def test_train_publishes_head_space_vectors_and_is_deterministic(base_index: Path, trained_index: Path,
                                                                 tmp_path: Path) -> None:
    head = Head.load(trained_index)
    with Recommender.open(trained_index) as rec:
        # the held-out products are exactly those the shared hash split picks (seed 3, 20 %), and only those
        assert sorted(head.holdout_ids) == sorted(i for i in rec.store.ids if is_held_out(i, 0.2, 3))
        assert 0 < len(head.holdout_ids) < 120 and head.dim == 16 + rec.embedder.dim  # MLP output + backbone
        assert rec.store.dim == head.dim and rec.store.model == rec.manifest.through_head(head.fingerprint, head.dim)
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
        assert rec.store.model is not None
        assert rec.store.model.head == json.loads(finished.stdout)["head_fingerprint"]
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


def _train(index_dir: Path, photos: Path, mapping: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    code = main(["train", "--index-dir", str(index_dir), "--epochs", "2", "--augment-views", "0", "--photos",
                 str(photos), "--mapping", str(mapping), "--photo-views", "2", "--json"])
    assert code == 0
    return json.loads(capsys.readouterr().out)


def test_train_with_photos_records_them_and_reuses_the_cache(
    demo_index: Path, labelled_photos: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(demo_index, index_dir)
    photos, mapping = labelled_photos

    first = _train(index_dir, photos, mapping, capsys)
    # 8 photos of 4 classes found in the demo catalogue; the hat photo's types (Caps, Hat) are not in it
    counts = (first["photos"], first["photo_classes"], first["photos_unmapped"], first["photos_unreadable"])
    assert counts == (8, 4, 1, 0)
    assert first["photo_rows"] >= 8 * 2 and first["photo_rows"] % (8 * 2) == 0  # two views each, repeated whole
    recorded = Head.load(index_dir).meta["photos"]
    assert (recorded["photos"], recorded["photo_classes"], recorded["views"]) == (8, 4, 2)
    cached = sorted(p.name for p in (index_dir / PHOTO_DIR).glob("*.npz"))
    assert [name.split("-")[0] for name in cached] == ["view0", "view1"]

    def no_embedding(*args: object, **kwargs: object) -> None:
        raise AssertionError("a rerun on the same photos, model and seed must embed nothing")

    monkeypatch.setattr(train_module, "embed_batches", no_embedding)
    second = _train(index_dir, photos, mapping, capsys)
    assert second["head_fingerprint"] == first["head_fingerprint"]  # same cached features, same seed: same head
    assert sorted(p.name for p in (index_dir / PHOTO_DIR).glob("*.npz")) == cached


def test_train_learns_the_worn_garments_of_the_street_photos_training_part(
    demo_index: Path, labelled_photos: tuple[Path, Path], tmp_path: Path,
) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(demo_index, index_dir)
    names = [f"{n:04d}" for n in range(12)]
    street = street_folder(tmp_path / "street", names)
    (street / "mapping.json").write_text(json.dumps({"shoes": ["Casual Shoes", "Sports Shoes", "Heels", "Flats"]}))
    photos, mapping = labelled_photos
    config = TrainConfig(epochs=1, augment_views=0)
    result = train_index(index_dir, config, progress=False, photos_dir=photos, mapping_path=mapping,
                         street_dir=street, photo_views=1)
    training = [n for n in names if not is_validation_photo(n)]
    assert (result.photos, result.photo_classes) == (8 + len(training), 4 + 1)  # the shoes crops: one class more
    crops = sorted(p.stem for p in (index_dir / STREET_CROPS_DIR / "street-shoes").glob("*.jpg"))
    assert crops == [f"{n}-0" for n in training]  # never a photo of the validation part
    assert Head.load(index_dir).worn_garments == len(training)  # recorded: kind steering's vote relies on it
    with Recommender.open(index_dir) as rec:
        assert rec.kind_classifier is not None and rec.kind_classifier.neighbour_weight == NEIGHBOUR_WEIGHT
    alone = train_index(index_dir, config, progress=False, street_dir=street, photo_views=1)
    assert (alone.photos, alone.photo_classes) == (len(training), 1)
    other = street_folder(tmp_path / "other", names[:4])  # another street folder: cropped anew
    (other / "mapping.json").write_text((street / "mapping.json").read_text())
    fewer = train_index(index_dir, config, progress=False, street_dir=other, photo_views=1)
    assert fewer.photos == len([n for n in names[:4] if not is_validation_photo(n)])
    with pytest.raises(FashionrecError, match="street_dir: cannot read mapping"):
        train_index(index_dir, config, progress=False, street_dir=tmp_path / "nowhere")
    train_index(index_dir, config, progress=False, photos_dir=photos, mapping_path=mapping, photo_views=1)
    assert Head.load(index_dir).worn_garments == 0  # retrained without them: no vote
    with Recommender.open(index_dir) as rec:
        assert rec.kind_classifier is not None and rec.kind_classifier.neighbour_weight == 0.0


def test_train_without_photos_records_none(demo_index: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    shutil.copytree(demo_index, index_dir)
    result = train_index(index_dir, TrainConfig(epochs=1, augment_views=0), progress=False)
    assert (result.photos, result.photo_rows) == (0, 0)
    assert "photos" not in Head.load(index_dir).meta
    assert "labelled photos" not in result.summary()
    assert not (index_dir / PHOTO_DIR).exists()


def test_set_loss_is_minus_log_of_the_mass_on_the_acceptable_types() -> None:
    torch = pytest.importorskip("torch")
    from fashionrec.backbone_train import set_loss

    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, math.log(2.0), 0.0]])
    sets = torch.tensor([[True, True, False], [False, True, False]])
    # row 0: (e^2 + e^1) / (e^2 + e^1 + 1); row 1: 2 / (1 + 2 + 1) = 1/2
    by_hand = (-math.log((math.e**2 + math.e) / (math.e**2 + math.e + 1)) + math.log(2.0)) / 2
    assert float(set_loss(logits, sets)) == pytest.approx(by_hand, rel=1e-6)
    # a one-type set is cross-entropy, and the one-hot rows the catalogue gets are exactly those sets
    codes = np.array([0, 1])
    one_hot = torch.from_numpy(set_targets(codes, 3))
    expected = torch.nn.functional.cross_entropy(logits, torch.from_numpy(codes))
    assert float(set_loss(logits, one_hot)) == pytest.approx(float(expected), rel=1e-6)
    assert set_targets(np.array([-1, 2]), 3).tolist() == [[False, False, False], [False, False, True]]


def test_library_errors_name_arguments_not_flags(labelled_photos: tuple[Path, Path], tmp_path: Path) -> None:
    photos, mapping = labelled_photos
    with pytest.raises(FashionrecError, match="photos_dir and mapping_path") as caught:
        train_index(tmp_path / "index", photos_dir=photos)
    assert "--" not in str(caught.value)
    (photos / "scarf").mkdir()
    with pytest.raises(FashionrecError, match="photos_dir class folder 'scarf' is not in mapping_path"):
        train_index(tmp_path / "index", photos_dir=photos, mapping_path=mapping)


def test_the_default_head_is_compact_for_the_fashion_model() -> None:
    assert default_backbone_weight(Manifest(name="fashion", dim=256)) == 0.0  # the MLP output alone: --dim (256) wide
    assert default_backbone_weight(Manifest(name="efficientnet-lite2", dim=1280)) == BLEND_WEIGHT
