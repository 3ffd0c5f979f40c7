"""Learn a text-image alignment LiT-style: both towers frozen, two small heads trained with a symmetric InfoNCE.

The image side is the backbone features the index already stores in SQLite (``CatalogDB.vectors``: raw features,
not whatever head is applied on top when publishing), so training touches no image. The text side is MiniLM's
embedding of each product's display name or, with ``captions``, of a templated caption from its metadata. Many
products share the exact same name, so pairs with identical text in a batch are all counted as positives rather
than as negatives of each other. A seeded product-level holdout is kept out of training and recorded in the
artifact, so an evaluation can query with products the heads never saw.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from fashionrec.errors import FashionrecError
from fashionrec.index import Index
from fashionrec.split import holdout_mask
from fashionrec.stores.faiss_store import FaissStore
from fashionrec.text.alignment import TEXT_DIR, Alignment
from fashionrec.text.captions import captions, product_name
from fashionrec.text.encoder import MiniLMEncoder, TextEncoder, encode_unique

if TYPE_CHECKING:  # annotations only: the CLI imports this module for its defaults, which must not load PyTorch
    import torch

MIN_TRAIN_ITEMS = 8


@dataclass(frozen=True)
class AlignmentConfig:
    """Training settings (the CLI's flags); recorded in the artifact's header."""

    dim: int = 256  # shared space
    hidden: int = 1024  # image head: Linear -> GELU -> Linear through this width; 0 = one Linear
    epochs: int = 20
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 1e-4
    holdout: float = 0.1  # fraction of products kept out of training
    seed: int = 0
    captions: bool = True  # also train on templated metadata captions
    caption_prob: float = 0.5  # per product and epoch: a caption instead of the name

    def check(self) -> AlignmentConfig:
        if self.dim < 1 or self.hidden < 0 or self.epochs < 1 or self.batch_size < 2 or self.lr <= 0:
            raise FashionrecError("train-text needs dim >= 1, hidden >= 0, epochs >= 1, batch size >= 2, lr > 0")
        if not 0 <= self.holdout < 1 or not 0 <= self.caption_prob <= 1:
            raise FashionrecError("holdout must be in [0, 1) and caption probability in [0, 1]")
        return self


@dataclass(frozen=True)
class AlignmentResult:
    alignment: Alignment
    trained: int
    held_out: int
    texts: int
    final_loss: float

    def summary(self) -> str:
        return (
            f"text alignment trained on {self.trained} products ({self.held_out} held out, {self.texts} distinct "
            f"texts), final loss {self.final_loss:.3f}"
        )


def train_alignment(
    index_dir: str | Path, config: AlignmentConfig = AlignmentConfig(), *, encoder: TextEncoder | None = None,
    progress: bool = True,
) -> AlignmentResult:
    """Train on the indexed catalogue, save ``INDEX_DIR/text/alignment.npz`` and the text search index."""
    import torch

    config.check()
    db, model = Index.open_database(index_dir)
    try:
        ids, features = db.vectors(model.dim)
        metadata = db.get_many(ids)
    finally:
        db.close()
    held = {i for i, out in zip(ids, holdout_mask(ids, config.holdout, config.seed), strict=True) if out}
    train_rows = [n for n, i in enumerate(ids) if i not in held]
    if len(train_rows) < MIN_TRAIN_ITEMS:
        raise FashionrecError(f"only {len(train_rows)} products to train on; need at least {MIN_TRAIN_ITEMS}")

    encoder = encoder or MiniLMEncoder()
    names = [product_name(metadata[ids[n]].metadata) for n in train_rows]
    caps = [captions(metadata[ids[n]].metadata) if config.captions else [] for n in train_rows]
    bank, rows = encode_unique(encoder, names + [c for cs in caps for c in cs], progress=progress)
    name_rows, caption_rows = rows[: len(names)], _split(rows[len(names) :], [len(c) for c in caps])

    torch.manual_seed(config.seed)
    image_head, text_head = _head(features.shape[1], config.hidden, config.dim), _head(bank.shape[1], 0, config.dim)
    logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    params = [*image_head.parameters(), *text_head.parameters(), logit_scale]
    optimiser = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    image_x, text_x = torch.from_numpy(features[train_rows]), torch.from_numpy(bank)
    rng = np.random.default_rng(config.seed)
    batch_size = min(config.batch_size, len(train_rows))  # a small catalogue trains on full batches
    steps = config.epochs * (len(train_rows) // batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=steps, pct_start=0.1)
    loss_value = float("nan")
    with tqdm(total=steps, desc="training text alignment", unit="step", disable=not progress) as bar:
        for _ in range(config.epochs):
            texts = _pick_texts(name_rows, caption_rows, config.caption_prob, rng)
            order = rng.permutation(len(train_rows))
            for start in range(0, len(order) - batch_size + 1, batch_size):
                batch = order[start : start + batch_size]
                text_ids = torch.from_numpy(texts[batch])
                loss = _clip_loss(image_head(image_x[batch]), text_head(text_x[text_ids]), logit_scale, text_ids)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                scheduler.step()
                with torch.no_grad():
                    logit_scale.clamp_(0, math.log(100))
                loss_value = loss.item()
                bar.set_postfix(loss=f"{loss_value:.3f}", temp=f"{math.exp(-logit_scale.item()):.3f}")
                bar.update()

    header = {
        "image_model": model.to_dict(), "text_model": encoder.name, "held_out": sorted(held), "config": asdict(config),
        "temperature": math.exp(-logit_scale.item()),
    }
    alignment = Alignment({"image": _numpy_layers(image_head), "text": _numpy_layers(text_head)}, header)
    alignment.save(index_dir)
    publish_text_index(index_dir, alignment, ids, features)
    return AlignmentResult(alignment, len(train_rows), len(held), len(bank), loss_value)


def publish_text_index(index_dir: str | Path, alignment: Alignment, ids: list[str], features: np.ndarray) -> Path:
    """Project every catalogue image (held-out ones too: the gallery is the whole catalogue) into the shared space
    and save them as the FAISS index text queries search (``INDEX_DIR/text/vectors.faiss``), tagged with the
    alignment's checksum so a search never pairs heads with vectors from other heads."""
    vectors = alignment.project("image", features)
    image_model = alignment.image_model
    if image_model is None:
        raise FashionrecError("the text alignment does not record the image model it was trained on")
    return FaissStore.of(list(ids), vectors, image_model.aligned(alignment.checksum)).save(Path(index_dir) / TEXT_DIR)


def _head(in_dim: int, hidden: int, out_dim: int) -> torch.nn.Module:
    import torch

    if hidden == 0:
        return torch.nn.Linear(in_dim, out_dim)
    return torch.nn.Sequential(
        torch.nn.Linear(in_dim, hidden), torch.nn.GELU(approximate="tanh"), torch.nn.Linear(hidden, out_dim)
    )


def _numpy_layers(head: torch.nn.Module) -> list[tuple[np.ndarray, np.ndarray]]:
    """The Linear layers of a head as (weight (in, out), bias) arrays, as ``Alignment.project`` applies them."""
    import torch

    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    return [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in linears]


def _clip_loss(images: torch.Tensor, texts: torch.Tensor, logit_scale: torch.Tensor,
               text_ids: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE; rows whose texts are identical are all positives (soft targets), not negatives."""
    import torch
    import torch.nn.functional as F

    images, texts = F.normalize(images, dim=1), F.normalize(texts, dim=1)
    logits = logit_scale.exp() * images @ texts.T
    same = (text_ids[:, None] == text_ids[None, :]).float()
    targets = same / same.sum(1, keepdim=True)
    return (torch.sum(-targets * F.log_softmax(logits, 1), 1).mean()
            + torch.sum(-targets * F.log_softmax(logits.T, 1), 1).mean()) / 2


def _pick_texts(name_rows: np.ndarray, caption_rows: list[np.ndarray], prob: float,
                rng: np.random.Generator) -> np.ndarray:
    """One text per product for an epoch: its name, or with probability ``prob`` one of its captions."""
    picked = name_rows.copy()
    use_caption = rng.random(len(picked)) < prob
    for n in np.flatnonzero(use_caption):
        if len(caption_rows[n]):
            picked[n] = caption_rows[n][rng.integers(len(caption_rows[n]))]
    return picked


def _split(rows: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    return np.split(rows, np.cumsum(sizes)[:-1]) if sizes else []
