"""A joint CLIP backbone: local transformers CLIPModel weights embed the catalogue photos, and their own
text tower answers text search directly, without alignment training. Tested with a tiny random CLIPModel."""

from __future__ import annotations

import csv
import json
import shutil
import string
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from fashionrec.cli import main
from fashionrec.errors import FashionrecError
from fashionrec.indexing import index_catalog
from fashionrec.modelspec import ModelSpec
from fashionrec.recommend import Recommender
from fashionrec.stores.faiss_store import FaissStore, build_index
from fashionrec.text import TextSearcher
from tests.conftest import DEMO_CATALOG, DEMO_QUERIES

transformers = pytest.importorskip("transformers")
PRODUCTS = 20


def save_tiny_clip(folder: Path) -> Path:
    """A randomly initialised CLIPModel (1 layer per tower, 16-d projection) and a letters-only CLIP tokenizer."""
    folder.mkdir()
    letters = list(string.ascii_lowercase + string.digits)
    vocab = {t: n for n, t in enumerate(["<|startoftext|>", "<|endoftext|>", *letters, *(c + "</w>" for c in letters)])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    transformers.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), unk_token="<|endoftext|>",
                               pad_token="<|endoftext|>").save_pretrained(folder)
    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    config = transformers.CLIPConfig(
        text_config={**tower, "vocab_size": len(vocab), "max_position_embeddings": 77, "bos_token_id": 0,
                     "eos_token_id": 1, "pad_token_id": 1},
        vision_config={**tower, "image_size": 224, "patch_size": 32}, projection_dim=16,
    )
    torch.manual_seed(0)
    transformers.CLIPModel(config).save_pretrained(folder)
    return folder / "model.safetensors"


@pytest.fixture(scope="module")
def clip_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(weights file, index dir) of a 20-product demo subset indexed with the tiny CLIP."""
    root = tmp_path_factory.mktemp("clip")
    weights = save_tiny_clip(root / "tiny-clip")
    catalog = root / "catalog"
    (catalog / "images").mkdir(parents=True)
    with (DEMO_CATALOG / "styles.csv").open() as handle:
        rows = list(csv.reader(handle))[: PRODUCTS + 1]
    with (catalog / "styles.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    for row in rows[1:]:
        shutil.copy(DEMO_CATALOG / "images" / f"{row[0]}.jpg", catalog / "images")
    index_catalog(catalog, root / "index", model=ModelSpec("clip", weights=str(weights)), progress=False)
    return weights, root / "index"


def test_text_search_uses_the_clip_text_tower(clip_index: tuple[Path, Path]) -> None:
    weights, index_dir = clip_index
    with TextSearcher.open(index_dir) as searcher:
        assert searcher.mode == "joint" and len(searcher) == PRODUCTS
        results = searcher.search("red dress", k=5)
        ids, vectors = searcher.db.vectors(16)
    clip = transformers.CLIPModel.from_pretrained(weights.parent).eval()
    tokens = transformers.AutoTokenizer.from_pretrained(weights.parent)(["red dress"], return_tensors="pt")
    with torch.inference_mode():
        out = clip.get_text_features(**tokens)  # a tensor in transformers 4, an output with pooler_output in 5
        features = out if isinstance(out, torch.Tensor) else out.pooler_output
    text = torch.nn.functional.normalize(features, dim=1).numpy()[0]
    scores = vectors @ text
    expected = [ids[n] for n in np.argsort(-scores)[:5]]
    assert [r.id for r in results] == expected
    np.testing.assert_allclose([r.score for r in results], np.sort(scores)[::-1][:5], atol=1e-4)


def test_text_search_ignores_head_space_vectors(clip_index: tuple[Path, Path], tmp_path: Path) -> None:
    """A projection head applied when publishing moves the FAISS vectors out of CLIP's space; text search must keep
    comparing with the raw CLIP vectors."""
    _, index_dir = clip_index
    with TextSearcher.open(index_dir) as searcher:
        expected = [(r.id, round(r.score, 5)) for r in searcher.search("red dress", k=5)]
    copy = tmp_path / "index"
    shutil.copytree(index_dir, copy)
    store = FaissStore.load(copy)
    noise = np.random.default_rng(0).normal(size=(len(store), store.dim)).astype(np.float32)
    index, kind = build_index(noise / np.linalg.norm(noise, axis=1, keepdims=True))
    FaissStore(index=index, ids=store.ids, kind=kind, model=replace(store.model, head="other-space")).save(copy)  # type: ignore[type-var]
    with TextSearcher.open(copy) as searcher:
        assert [(r.id, round(r.score, 5)) for r in searcher.search("red dress", k=5)] == expected


def test_photo_search_runs_on_the_clip_vision_tower(clip_index: tuple[Path, Path]) -> None:
    _, index_dir = clip_index
    with Recommender.open(index_dir) as rec:
        assert rec.embedder.dim == 16
        results = rec.recommend(DEMO_QUERIES / "dress.jpg", k=3)
    assert len(results) == 3 and results[0].score >= results[-1].score


def test_cli_search_on_a_clip_index(clip_index: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, index_dir = clip_index
    assert main(["search", "shoes", "--index-dir", str(index_dir), "-k", "4", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) == 4


def test_clip_needs_a_weights_file_inside_a_model_directory(tmp_path: Path) -> None:
    with pytest.raises(FashionrecError, match="needs weights"):
        ModelSpec("clip").build(backend="torch")
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(FashionrecError, match="not a saved CLIPModel directory"):
        ModelSpec("clip", weights=str(tmp_path / "model.safetensors")).build(backend="torch")
