"""Train the projection head on an index's stored backbone features and the catalogue's own labels.

The backbone stays frozen: fine-tuning it on 60x80 studio shots made real-photo queries worse (hit@5 0.75 ->
0.60 in an earlier trial), while a head over frozen features trains in about a minute on two CPU cores and
never needs an image re-embedded. Loss: normalised-softmax classification of articleType (a cosine classifier
whose class weights act as proxies, so same-type products gather around one direction, which is exactly what a
cosine search needs), plus the same loss on auxiliary columns (subCategory, baseColour, gender) with a smaller
weight. The numbers behind these choices are in the README ("Recommendation quality").

Photo-like views (``augment_views``, default 1): the head also learns from each training product's image
re-embedded on a random background, tilted, cropped and relit (:mod:`fashionrec.augment`), because the head
trained on studio shots alone made real photos worse. Their features are cached in ``INDEX_DIR/augment/``, chunk
by chunk, so a killed ``train`` resumes and a rerun on the same products, model and seed embeds nothing.

Split by product: ``holdout`` of the products never take part in training (nor are they augmented); their ids
are stored in the head so ``fashionrec evaluate`` can query with them against the rest. Deterministic for a
given ``seed``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from fashionrec.atomic import write_atomically
from fashionrec.augment import photo_like
from fashionrec.catalog_db import CatalogDB
from fashionrec.errors import FashionrecError
from fashionrec.head import Head
from fashionrec.indexing import embed_batches, publish_faiss
from fashionrec.modelspec import ModelSpec, vector_identity
from fashionrec.split import holdout_mask
from fashionrec.stores.faiss_store import IndexKind

if TYPE_CHECKING:  # only an annotation here; importing it loads PyTorch
    from fashionrec.embedders import Embedder

MAIN_LABEL = "articleType"
AUX_LABELS = ("subCategory", "baseColour", "gender")
AUGMENT_DIR = "augment"
AUGMENT_CHUNK = 2048  # products per cached file: what a kill can lose
AUGMENT_VERSION = 1  # bump when fashionrec.augment changes, so cached views are remade


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; every one is a ``fashionrec train`` flag."""

    epochs: int = 10
    hidden: int = 1024
    dim: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    batch_size: int = 512
    temperature: float = 0.05
    aux_weight: float = 0.3
    aux_labels: tuple[str, ...] = AUX_LABELS
    dropout: float = 0.2
    holdout: float = 0.1
    seed: int = 0
    backbone_weight: float = 1.33  # the backbone features kept beside the MLP output (see fashionrec.head.Head)
    augment_views: int = 1  # photo-like views per training product (0 = studio shots only)

    def check(self) -> None:
        if not 0 <= self.holdout < 0.9:
            raise FashionrecError(f"--holdout must be in [0, 0.9), got {self.holdout}")
        for name in ("epochs", "hidden", "dim", "batch_size"):
            if getattr(self, name) < 1:
                raise FashionrecError(f"--{name.replace('_', '-')} must be at least 1")
        if not 0 <= self.augment_views <= 16:
            raise FashionrecError(f"--augment-views must be between 0 and 16, got {self.augment_views}")
        if self.lr <= 0 or self.temperature <= 0 or self.aux_weight < 0 or self.backbone_weight < 0:
            raise FashionrecError("--lr and --temperature must be positive, --aux-weight and --backbone-weight not "
                                  "negative")


@dataclass
class TrainResult:
    """What ``fashionrec train`` did, for the CLI summary and the benchmark."""

    trained_on: int
    held_out: int
    classes: int
    final_loss: float
    head_fingerprint: str
    index_kind: str
    history: list[float] = field(default_factory=list)
    views: int = 0  # photo-like views trained on
    views_unreadable: int = 0  # views asked for whose image could not be read any more (moved or deleted)

    def summary(self) -> str:
        unreadable = f", {self.views_unreadable} images unreadable" if self.views_unreadable else ""
        return (
            f"trained a head on {self.trained_on} products + {self.views} photo-like views ({self.classes} "
            f"articleTypes, {self.held_out} held out{unreadable}), final loss {self.final_loss:.3f}; re-published the "
            f"index ({self.index_kind}) with head {self.head_fingerprint}"
        )


def encode_labels(values: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Class indices and vocabulary; an empty value gets -1 (ignored by the loss)."""
    vocab = sorted({v for v in values if v})
    index = {v: n for n, v in enumerate(vocab)}
    return np.array([index.get(v, -1) for v in values], dtype=np.int64), vocab


def _view_seed(seed: int, view: int, item_id: str) -> int:
    """A stable seed per (training seed, view, product): Python's ``hash`` of a str changes between runs."""
    return int.from_bytes(hashlib.blake2b(f"{seed}/{view}/{item_id}".encode(), digest_size=8).digest(), "little")


def augmented_features(
    db: CatalogDB, index_dir: Path, model: dict[str, Any], items: Sequence[tuple[str, str]], views: int, seed: int,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Backbone features of ``views`` photo-like views of each (id, image path) in ``items``, and for each row the
    position in ``items`` of its product (a product whose image cannot be read any more has no rows).

    Cached per chunk of ``AUGMENT_CHUNK`` products in ``INDEX_DIR/augment/``, under a name that hashes the model,
    the seed, the view and every (id, image digest) of the chunk, written atomically: a killed run keeps its
    finished chunks, a changed image or model remakes only what it touches, and stale files are removed."""
    folder = index_dir / AUGMENT_DIR
    digests = {item_id: digest for item_id, digest, _ in db.embedded_digests()}
    identity = vector_identity(model)
    wanted: dict[Path, tuple[int, range]] = {}
    for view in range(views):
        for start in range(0, len(items), AUGMENT_CHUNK):
            chunk = range(start, min(start + AUGMENT_CHUNK, len(items)))
            key = json.dumps([identity, AUGMENT_VERSION, seed, view, [(items[n][0], digests.get(items[n][0]))
                                                                       for n in chunk]])
            name = f"view{view}-{start // AUGMENT_CHUNK:05d}-{hashlib.blake2b(key.encode(), digest_size=8).hexdigest()}"
            wanted[folder / f"{name}.npz"] = (view, chunk)
    features, rows = [], []
    embedder = None  # built only when something is not cached yet
    with tqdm(total=views * len(items), desc="embedding photo-like views", unit="img", disable=not progress) as bar:
        for path, (view, chunk) in wanted.items():
            cached = _load_chunk(path, int(model["dim"]))
            if cached is None:
                if embedder is None:
                    embedder = ModelSpec.from_dict(model).build(cache_dir=index_dir)
                    folder.mkdir(exist_ok=True)
                cached = _embed_chunk(embedder, items, chunk, view, seed, bar)
                buffer = io.BytesIO()
                np.savez(buffer, rows=cached[1], features=cached[0])
                write_atomically(path, buffer.getvalue())
            else:
                bar.update(len(chunk))
            features.append(cached[0])
            rows.append(cached[1])
    if folder.is_dir():
        for stale in set(folder.glob("*.npz")) - set(wanted):
            stale.unlink(missing_ok=True)
    if not features:
        return np.zeros((0, int(model["dim"])), np.float32), np.zeros(0, np.int64)
    return np.vstack(features), np.concatenate(rows)


def _embed_chunk(embedder: Embedder, items: Sequence[tuple[str, str]], chunk: range, view: int, seed: int,
                 bar: tqdm) -> tuple[np.ndarray, np.ndarray]:
    """Embed the views of ``items[chunk]``; rows are positions in ``items``."""

    def transform(item_id: str, image: Image.Image) -> Image.Image:
        return photo_like(image, np.random.default_rng(_view_seed(seed, view, item_id)))

    position = {items[n][0]: n for n in chunk}
    features, rows = [], []
    for done, vectors, failures in embed_batches(embedder, [items[n] for n in chunk], 32, transform=transform):
        features.append(vectors)
        rows.append(np.array([position[i] for i in done], dtype=np.int64))
        bar.update(len(done) + len(failures))
    return np.vstack(features).astype(np.float32), np.concatenate(rows)


def _load_chunk(path: Path, dim: int) -> tuple[np.ndarray, np.ndarray] | None:
    """A cached chunk, or None when it is missing or unusable (then it is simply remade)."""
    try:
        with np.load(path) as data:
            features, rows = data["features"], data["rows"]
    except (OSError, ValueError, KeyError, EOFError):
        return None
    if features.ndim != 2 or features.shape[1] != dim or len(rows) != len(features):
        return None
    return features.astype(np.float32), rows.astype(np.int64)


def fit_head(
    features: np.ndarray, labels: dict[str, np.ndarray], config: TrainConfig, progress: bool = True
) -> tuple[dict[str, np.ndarray], list[float]]:
    """Train the MLP with PyTorch; returns NumPy weights (input standardisation folded into the first layer)
    and the mean loss per epoch."""
    import torch
    from torch import nn

    torch.manual_seed(config.seed)
    mean = features.mean(axis=0)
    std = features.std(axis=0) + 1e-6
    x = torch.from_numpy(((features - mean) / std).astype(np.float32))
    targets = {name: torch.from_numpy(values) for name, values in labels.items()}
    mlp = nn.Sequential(
        nn.Linear(x.shape[1], config.hidden), nn.ReLU(), nn.Dropout(config.dropout), nn.Linear(config.hidden, config.dim)
    )
    proxies = nn.ParameterDict(
        {name: nn.Parameter(torch.randn(int(values.max()) + 1, config.dim) * 0.01) for name, values in labels.items()}
    )
    params = list(mlp.parameters()) + list(proxies.parameters())
    optimiser = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * -(-len(x) // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss(ignore_index=-1)
    generator = torch.Generator().manual_seed(config.seed)
    history: list[float] = []
    mlp.train()
    with tqdm(total=steps, desc="training head", unit="batch", disable=not progress) as bar:
        for _ in range(config.epochs):
            order = torch.randperm(len(x), generator=generator)
            total = 0.0
            for start in range(0, len(x), config.batch_size):
                batch = order[start : start + config.batch_size]
                z = nn.functional.normalize(mlp(x[batch]), dim=1)
                loss = sum(
                    (1.0 if name == MAIN_LABEL else config.aux_weight)
                    * loss_fn(z @ nn.functional.normalize(proxies[name], dim=1).T / config.temperature, t[batch])
                    for name, t in targets.items()
                )
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                schedule.step()
                total += float(loss.detach()) * len(batch)
                bar.update(1)
            history.append(total / len(x))
            bar.set_postfix(loss=f"{history[-1]:.3f}")
    first, last = mlp[0], mlp[3]
    w1 = first.weight.detach().numpy().T / std[:, None]
    b1 = first.bias.detach().numpy() - (mean / std) @ first.weight.detach().numpy().T
    weights = {"w1": w1, "b1": b1, "w2": last.weight.detach().numpy().T, "b2": last.bias.detach().numpy()}
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}, history


def train_index(
    index_dir: str | os.PathLike[str], config: TrainConfig = TrainConfig(), *, index_kind: IndexKind = "auto",
    progress: bool = True,
) -> TrainResult:
    """Train a head on the index's stored features, save it atomically, re-publish the FAISS file with it.

    A kill before the head is written leaves the old head and index untouched; the head and the FAISS file are
    each replaced atomically, and a kill between the two renames is detected by ``Recommender.open`` (fingerprint
    mismatch) and repaired by re-running ``fashionrec train`` or ``fashionrec index``.
    """
    config.check()
    path = Path(index_dir)
    db = CatalogDB(path)
    try:
        model = json.loads(db.get_setting("model") or "null")
        if model is None or MAIN_LABEL not in db.columns:
            raise FashionrecError(f"index in {path} has no model or no {MAIN_LABEL} column; run `fashionrec index` first")
        ids, features = db.vectors(int(model["dim"]))
        if len(ids) < 10:
            raise FashionrecError(f"index in {path} has {len(ids)} embedded products; training needs at least 10")
        items = db.get_many(ids)
        held = holdout_mask(ids, config.holdout, config.seed)
        names = [MAIN_LABEL] + [c for c in config.aux_labels if c in db.columns and c != MAIN_LABEL]
        labels, vocab = {}, {}
        for name in names:
            codes, vocab[name] = encode_labels([items[i].metadata.get(name, "") for i in ids])
            labels[name] = codes[~held]
        train_items = [(i, items[i].image_path) for i, h in zip(ids, held) if not h]
        views, rows = augmented_features(db, path, model, train_items, config.augment_views, config.seed, progress)
        weights, history = fit_head(np.vstack([features[~held], views]),
                                    {name: np.concatenate([codes, codes[rows]]) for name, codes in labels.items()},
                                    config, progress)
        head = Head(
            weights,
            {
                "model": model,
                "config": asdict(config),
                "backbone_weight": config.backbone_weight,
                "labels": {name: len(v) for name, v in vocab.items()},
                "trained_on": int((~held).sum()),
                "augmented_views": len(rows),
                "holdout_ids": [i for i, h in zip(ids, held) if h],
            },
        )
        head.save(path)
        store = publish_faiss(db, path, model, index_kind)
        return TrainResult(
            trained_on=int((~held).sum()), held_out=int(held.sum()), classes=len(vocab[MAIN_LABEL]),
            final_loss=history[-1], head_fingerprint=head.fingerprint, index_kind=store.kind, history=history,
            views=len(rows), views_unreadable=config.augment_views * len(train_items) - len(rows),
        )
    finally:
        db.close()
