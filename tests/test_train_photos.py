"""`fashionrec train --photos DIR --mapping JSON`: labelled real photos join the head's training."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from fashionrec import train as train_module
from fashionrec.cli import main
from fashionrec.errors import FashionrecError
from fashionrec.head import Head
from fashionrec.train import PHOTO_DIR, TrainConfig, set_targets, train_index


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


def _one_error_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("fashionrec: error:")
    return err


def test_bad_photo_input_is_one_line_and_exit_2(
    labelled_photos: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos, mapping = labelled_photos
    base = ["train", "--index-dir", str(tmp_path / "no-index-needed"), "--photos", str(photos)]

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert "mapping_path" in _one_error_line([*base, "--mapping", str(broken)], capsys)
    assert "mapping_path" in _one_error_line([*base, "--mapping", str(tmp_path / "missing.json")], capsys)
    not_an_object = tmp_path / "list.json"
    not_an_object.write_text('["Tshirts"]')
    assert "mapping_path" in _one_error_line([*base, "--mapping", str(not_an_object)], capsys)

    (photos / "scarf").mkdir()
    (photos / "scarf" / "0.jpg").write_bytes((photos / "hat" / "0.jpg").read_bytes())
    assert "'scarf'" in _one_error_line([*base, "--mapping", str(mapping)], capsys)
    shutil.rmtree(photos / "scarf")

    (photos / "skirt").mkdir()  # in the mapping, but empty
    assert "skirt" in _one_error_line([*base, "--mapping", str(mapping)], capsys)
    (photos / "skirt").rmdir()

    assert "mapping_path" in _one_error_line(base, capsys)  # --photos without --mapping
    assert "photos_dir" in _one_error_line(
        [*base[:-1], str(tmp_path / "nowhere"), "--mapping", str(mapping)], capsys)
    assert "photo_views" in _one_error_line([*base, "--mapping", str(mapping), "--photo-views", "0"], capsys)


def test_library_errors_name_arguments_not_flags(labelled_photos: tuple[Path, Path], tmp_path: Path) -> None:
    photos, mapping = labelled_photos
    with pytest.raises(FashionrecError, match="photos_dir and mapping_path") as caught:
        train_index(tmp_path / "index", photos_dir=photos)
    assert "--" not in str(caught.value)
    (photos / "scarf").mkdir()
    with pytest.raises(FashionrecError, match="photos_dir class folder 'scarf' is not in mapping_path"):
        train_index(tmp_path / "index", photos_dir=photos, mapping_path=mapping)
