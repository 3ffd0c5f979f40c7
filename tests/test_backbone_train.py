"""fashionrec.backbone_train: the loss, the split, and a tiny seeded schedule end to end, killed and resumed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fashionrec.backbone_train import BackboneConfig, CatalogueLayout, set_loss, train_backbone
from fashionrec.cli import main
from fashionrec.embedders import create_embedder
from fashionrec.errors import FashionrecError
from fashionrec.split import holdout_mask, is_held_out
from tests.conftest import DEMO_CATALOG, DEMO_QUERIES, write_shop

pytestmark = pytest.mark.slow  # `pytest -m "not slow"` skips this module (the fast tier)

TINY = {"image_size": 64, "steps": 12, "batch_size": 8, "catalogue_views": 2, "photo_views": 2, "checkpoint_every": 4}


@pytest.fixture
def labelled_photos(tmp_path: Path) -> tuple[Path, Path]:
    """A photo folder in the clothing-photos layout made of the demo queries, with its mapping."""
    folder = tmp_path / "photos"
    classes = {"dress": ["Dresses"], "pants": ["Trousers", "Jeans"], "shoes": ["Casual Shoes", "Sports Shoes"],
               "t-shirt": ["Tshirts"]}
    for name in classes:
        (folder / name).mkdir(parents=True)
        shutil.copy(DEMO_QUERIES / f"{name}.jpg", folder / name / "a.jpg")
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps(classes))
    return folder, mapping


def test_set_loss_is_minus_log_of_the_mass_on_the_acceptable_classes() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]))
    targets = torch.tensor([[False, True, True], [True, False, False]])
    expected = (-np.log(0.3 + 0.2) - np.log(0.1)) / 2
    assert float(set_loss(logits, targets)) == pytest.approx(expected, rel=1e-5)
    one_hot = torch.nn.functional.cross_entropy(logits, torch.tensor([1, 0]))
    assert float(set_loss(logits, torch.tensor([[False, True, False], [True, False, False]]))) == pytest.approx(
        float(one_hot), rel=1e-5)


def test_split_depends_on_the_id_alone() -> None:
    ids = [str(n) for n in range(2000)]
    mask = holdout_mask(ids, 0.1, seed=0)
    assert 150 < mask.sum() < 250
    reversed_mask = holdout_mask(ids[::-1], 0.1, seed=0)[::-1]
    assert (mask == reversed_mask).all()
    assert (holdout_mask(ids[:500], 0.1, seed=0) == mask[:500]).all()  # a smaller catalogue keeps its decisions
    assert not (mask == holdout_mask(ids, 0.1, seed=1)).all()
    assert is_held_out("x", 1.0, 0) and not is_held_out("x", 0.0, 0)


def test_tiny_schedule_end_to_end(tmp_path: Path, labelled_photos: tuple[Path, Path]) -> None:
    photos, mapping = labelled_photos
    out = tmp_path / "w.pt"
    result = train_backbone(DEMO_CATALOG, out, photos_dir=photos, mapping_path=mapping, work_dir=tmp_path / "work",
                            config=BackboneConfig(**TINY), progress=False)
    held = int(holdout_mask([line.split(",")[0] for line in (DEMO_CATALOG / "styles.csv").read_text().splitlines()[1:]],
                            0.1, 0).sum())
    assert result.held_out == held and result.products == 300 - held and result.photos == 4
    assert result.rows == 2 * result.products + 2 * 4
    card = json.loads(out.with_suffix(".json").read_text())
    import hashlib

    assert card["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest() == result.sha256
    embedder = create_embedder("fashion", image_size=64, weights=out)
    from PIL import Image

    vectors = embedder.embed([Image.open(DEMO_QUERIES / "dress.jpg"), Image.open(DEMO_QUERIES / "pants.jpg")])
    assert vectors.shape == (2, 256) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    # the trained blocks moved, the frozen stem did not
    base = create_embedder("efficientnet-lite0").torch_module().state_dict()
    state = torch.load(out, weights_only=True)
    assert torch.equal(state["trunk._conv_stem.weight"].float(), base["_conv_stem.weight"].half().float())
    assert not torch.allclose(state["trunk._blocks.15._project_conv.weight"].float(),
                              base["_blocks.15._project_conv.weight"].float(), atol=1e-4)
    # a rerun reuses every cached map and the finished checkpoint
    again = train_backbone(DEMO_CATALOG, tmp_path / "w2.pt", photos_dir=photos, mapping_path=mapping,
                           work_dir=tmp_path / "work", config=BackboneConfig(**TINY), progress=False)
    assert again.sha256 == result.sha256


def test_a_shop_trains_the_backbone_on_its_own_columns(tmp_path: Path) -> None:
    shop = write_shop(tmp_path / "shop", 60)
    photos = tmp_path / "photos"
    (photos / "dress").mkdir(parents=True)
    shutil.copy(DEMO_QUERIES / "dress.jpg", photos / "dress" / "a.jpg")
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({"dress": ["dresses"]}))  # the shop's own category values
    out = tmp_path / "w.pt"
    layout = CatalogueLayout(str(shop / "products.csv"), "sku", "photos/{sku}.jpg", label="category")
    result = train_backbone(shop, out, photos_dir=photos, mapping_path=mapping, work_dir=tmp_path / "work",
                            config=BackboneConfig(**TINY), progress=False, layout=layout)
    assert result.photos == 1 and result.products == 60 - result.held_out
    labels = json.loads(out.with_suffix(".json").read_text())["labels"]
    assert list(labels) == ["category", "colour", "type_colour"]  # the shop's label, its colour, the two together
    with pytest.raises(FashionrecError, match="label 'articleType' is not a column of the catalogue"):
        train_backbone(shop, out, work_dir=tmp_path / "work", config=BackboneConfig(**TINY), progress=False,
                       layout=CatalogueLayout(str(shop / "products.csv"), "sku", "photos/{sku}.jpg",
                                              label="articleType"))


def test_a_run_continues_from_another_runs_checkpoint(tmp_path: Path, labelled_photos: tuple[Path, Path]) -> None:
    photos, mapping = labelled_photos
    common = {"photos_dir": photos, "mapping_path": mapping, "progress": False}
    train_backbone(DEMO_CATALOG, tmp_path / "first.pt", work_dir=tmp_path / "first", config=BackboneConfig(**TINY),
                   **common)
    init = tmp_path / "first" / "checkpoint.pt"
    # one step at a negligible learning rate: the continued run keeps what the first one learnt, a fresh one does not
    nudge = {**TINY, "steps": 1, "lr": 1e-9, "backbone_lr": 0.0}
    train_backbone(DEMO_CATALOG, tmp_path / "cont.pt", work_dir=tmp_path / "cont",
                   config=BackboneConfig(**nudge, init=str(init)), **common)
    train_backbone(DEMO_CATALOG, tmp_path / "fresh.pt", work_dir=tmp_path / "fresh", config=BackboneConfig(**nudge),
                   **common)
    first, cont, fresh = (torch.load(tmp_path / f"{name}.pt", weights_only=True) for name in ("first", "cont", "fresh"))
    assert json.loads((tmp_path / "cont.json").read_text())["config"]["init"] == str(init)
    assert torch.allclose(cont["proj.weight"].float(), first["proj.weight"].float(), atol=1e-3)
    assert not torch.allclose(fresh["proj.weight"].float(), first["proj.weight"].float(), atol=1e-3)
    with pytest.raises(FashionrecError, match="other labels or another dimension"):
        train_backbone(DEMO_CATALOG, tmp_path / "bad.pt", work_dir=tmp_path / "bad",
                       config=BackboneConfig(**{**nudge, "dim": 64}, init=str(init)), **common)
    with pytest.raises(FashionrecError, match="does not exist"):
        BackboneConfig(init=str(tmp_path / "missing.pt")).check()


def test_killed_run_resumes_to_the_same_weights(tmp_path: Path, labelled_photos: tuple[Path, Path],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    photos, mapping = labelled_photos
    args = ["train-backbone", str(DEMO_CATALOG), "--photos", str(photos), "--mapping", str(mapping),
            "--image-size", "64", "--steps", "300", "--batch-size", "8", "--photo-views", "2",
            "--checkpoint-every", "5", "--json"]
    env = {**os.environ, "FASHIONREC_THREADS": "1"}
    work, out = tmp_path / "killed", tmp_path / "killed.pt"
    proc = subprocess.Popen([sys.executable, "-m", "fashionrec", *args, "--work-dir", str(work), "--output", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (work / "checkpoint.pt").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "the run finished before it could be killed"
    step = torch.load(work / "checkpoint.pt", weights_only=False)["step"]
    assert 0 < step < 300
    monkeypatch.setenv("FASHIONREC_THREADS", "1")  # the killed run's thread count, so every run sums alike
    threads = torch.get_num_threads()
    try:
        assert main([*args, "--work-dir", str(work), "--output", str(out)]) == 0
        assert main([*args, "--work-dir", str(tmp_path / "clean"), "--output", str(tmp_path / "clean.pt")]) == 0
    finally:
        torch.set_num_threads(threads)
    resumed, clean = torch.load(out, weights_only=True), torch.load(tmp_path / "clean.pt", weights_only=True)
    for name, tensor in clean.items():
        assert torch.allclose(resumed[name].float(), tensor.float(), atol=2e-3), name


def test_bad_arguments_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train-backbone", str(DEMO_CATALOG), "--output", str(tmp_path / "w.pt"), "--steps", "0"]) == 2
    assert "steps must be at least 1" in capsys.readouterr().err
    assert main(["train-backbone", str(DEMO_CATALOG), "--output", str(tmp_path / "w.pt"),
                 "--photos", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "mapping" in err
