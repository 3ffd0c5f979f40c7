"""Train the projection head on an index's stored backbone features and the catalogue's own labels.

The backbone stays frozen here (fine-tuning it is ``fashionrec train-backbone``, :mod:`fashionrec.backbone_train`,
done once for everyone): a head over an index's stored features trains in minutes on two CPU cores and never
needs an image re-embedded, so a retailer can tune it to its own catalogue and labelled photos. Loss: normalised-softmax
classification of the index's **label** column (fashionrec.columns: Myntra's articleType, a shop's category; a
cosine classifier whose class weights act as proxies, so same-kind products gather around one direction, which is
exactly what a cosine search needs), plus the same loss on the auxiliary columns it records (for Myntra:
subCategory, baseColour, gender) with a smaller weight. The numbers behind these choices are in docs/quality.md.

Photo-like views (``augment_views``, default 1): the head also learns from each training product's image
re-embedded on a random background, tilted, cropped and relit (:mod:`fashionrec.augment`), because the head
trained on studio shots alone made real photos worse. Their features are cached in ``INDEX_DIR/augment/``, chunk
by chunk, so a killed ``train`` resumes and a rerun on the same products, model and seed embeds nothing.

Labelled real photos (``photos_dir`` + ``mapping_path``, the layout of ``clothing-photos``: a folder per class,
and a JSON naming each class's acceptable values of the label): a retailer's own shoppers' photos join the training,
embedded with the index's model (a few random crops of each as well), cached in ``INDEX_DIR/photo-views/`` the
same way, with a set-valued target: minus the log of the softmax mass on the class's label values. They are
repeated so they weigh in beside a large catalogue (``photo_share``).

Garments as they are worn (``street_dir``, the layout of the shared ``street-photos``): the garments of its training
part, cropped (:func:`fashionrec.street.write_street_crops`, kept in ``INDEX_DIR/street-crops/``), join the
labelled photos with their labels' relevant values (``street_dir/mapping.json``); its validation part is never
read, so that street figures measured on it stay honest.

Split by product: ``holdout`` of the products never take part in training (nor are they augmented); their ids
are stored in the head so ``fashionrec evaluate`` can query with them against the rest. Deterministic for a
given ``seed``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
from PIL import Image
from tqdm import tqdm

from fashionrec.atomic import write_atomically
from fashionrec.augment import photo_like
from fashionrec.catalog_db import CatalogDB
from fashionrec.columns import load_mapping, read_roles, write_roles
from fashionrec.embedders.protocol import Embedder
from fashionrec.errors import FashionrecError
from fashionrec.head import Head
from fashionrec.index import Index
from fashionrec.indexing import Transform, embed_batches
from fashionrec.manifest import Manifest
from fashionrec.modelspec import ModelSpec
from fashionrec.publish import publish_faiss
from fashionrec.split import holdout_mask
from fashionrec.stores.faiss_store import IndexKind
from fashionrec.street import CROPS_MAPPING, write_street_crops

STREET_CROPS_DIR = "street-crops"
AUGMENT_DIR = "augment"
AUGMENT_CHUNK = 2048  # products per cached file: what a kill can lose
AUGMENT_VERSION = 1  # bump when fashionrec.augment changes, so cached views are remade
PHOTO_DIR = "photo-views"
PHOTO_VERSION = 1  # bump when the photo views (fashionrec.backbone_train.photo_crop) change
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
PHOTO_VIEWS = 4  # views of each labelled photo: the photo, then random crops
PHOTO_SHARE = 0.2  # labelled photos are repeated to about this share of the training rows


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; every one is a ``fashionrec train`` flag."""

    epochs: int = 10
    min_steps: int = 300  # epochs are raised until training takes at least this many optimiser steps: a small
    # catalogue (a shop of 2,000 products makes 4 batches an epoch) is not left half-trained; chosen on the held-out
    # products of such a shop (benchmarks/shop_labels.py), never reached by a Myntra-sized catalogue
    hidden: int = 1024
    dim: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    batch_size: int = 512
    temperature: float = 0.05
    aux_weight: float = 0.3
    label: str | None = None  # the column to learn; None: the index's recorded label (fashionrec.columns)
    aux_labels: tuple[str, ...] | None = None  # None: the index's recorded auxiliary labels and colour
    dropout: float = 0.2
    holdout: float = 0.1
    seed: int = 0
    backbone_weight: float | None = None  # the backbone features kept beside the MLP output (fashionrec.head.Head);
    # None: default_backbone_weight(model)
    augment_views: int = 1  # photo-like views per training product (0 = studio shots only)

    def check(self) -> None:
        if not 0 <= self.holdout < 0.9:
            raise FashionrecError(f"holdout must be in [0, 0.9), got {self.holdout}")
        if self.min_steps < 0:
            raise FashionrecError(f"min_steps must not be negative, got {self.min_steps}")
        for name in ("epochs", "hidden", "dim", "batch_size"):
            if getattr(self, name) < 1:
                raise FashionrecError(f"--{name.replace('_', '-')} must be at least 1")
        if not 0 <= self.augment_views <= 16:
            raise FashionrecError(f"augment_views must be between 0 and 16, got {self.augment_views}")
        negative_blend = self.backbone_weight is not None and self.backbone_weight < 0
        if self.lr <= 0 or self.temperature <= 0 or self.aux_weight < 0 or negative_blend:
            raise FashionrecError("lr and temperature must be positive, aux_weight and backbone_weight not "
                                  "negative")


BLEND_WEIGHT = 1.33  # backbone weight of the blend, for generic (ImageNet) backbones
FASHION_MODELS = ("fashion",)  # backbones trained for fashion retrieval (fashionrec train-backbone)


def default_backbone_weight(model: Manifest) -> float:
    """The head's default blend for the backbone ``model`` (its recorded spec).

    A generic ImageNet backbone keeps its features beside the MLP output (weight 1.33): the MLP alone, trained on
    studio shots, made real photos worse. A backbone trained for fashion retrieval (``fashion``) is already that
    compact metric space, and the blend only doubles the searched vector (512-d instead of the MLP's 256) for no
    gain (docs/quality.md), so its head searches the MLP output alone (weight 0)."""
    return 0.0 if model.name in FASHION_MODELS else BLEND_WEIGHT


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
    photos: int = 0  # labelled real photos trained on (``photos_dir``)
    photo_classes: int = 0  # their classes that map to at least one label value of the index
    photo_rows: int = 0  # rows the photos' views make in training, repeats included
    photos_unmapped: int = 0  # photos left out: their class maps to no label value present in the index
    photos_unreadable: int = 0  # photos left out: the file could not be decoded
    label: str = ""  # the column the head learnt (its values are the classes)
    aux_labels: list[str] = field(default_factory=list)  # the columns learnt beside it

    def summary(self) -> str:
        unreadable = f", {self.views_unreadable} images unreadable" if self.views_unreadable else ""
        photos = ""
        if self.photos or self.photos_unmapped or self.photos_unreadable:
            photos = f" + {self.photos} labelled photos of {self.photo_classes} classes ({self.photo_rows} rows"
            if self.photos_unmapped:
                photos += f"; {self.photos_unmapped} left out, their class maps to no {self.label} in the index"
            if self.photos_unreadable:
                photos += f"; {self.photos_unreadable} unreadable"
            photos += ")"
        return (
            f"trained a head on {self.trained_on} products + {self.views} photo-like views{photos} ({self.classes} "
            f"values of {self.label}, {self.held_out} held out{unreadable}), final loss {self.final_loss:.3f}; re-published the "
            f"index ({self.index_kind}) with head {self.head_fingerprint}"
        )


@dataclass(frozen=True)
class LabelledPhotos:
    """Real photos in a folder per class, and each class's acceptable values of the label column."""

    items: list[tuple[str, str]]  # ("class/file name", path), sorted
    classes: list[str]  # the class of each item
    mapping: dict[str, list[str]]


def read_photos(photos_dir: str | os.PathLike[str], mapping_path: str | os.PathLike[str]) -> LabelledPhotos:
    """The photos of ``photos_dir/<class>/*.jpg`` and the JSON ``mapping_path`` {class: [label value, ...]}.

    Every class folder must be in the mapping and hold at least one photo (a typo or an empty folder is a
    mistake to report, not something to train around); a mapping class without a folder is fine."""
    folder = Path(photos_dir)
    try:
        mapping = load_mapping(Path(mapping_path))
    except FashionrecError as exc:
        raise FashionrecError(f"mapping_path: {exc}") from None
    if not folder.is_dir():
        raise FashionrecError(f"photos_dir {folder} is not a folder")
    items, classes = [], []
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir())
    if not class_dirs:
        raise FashionrecError(f"photos_dir {folder} has no class folders (expected photos_dir/<class>/*.jpg)")
    for class_dir in class_dirs:
        if class_dir.name not in mapping:
            raise FashionrecError(f"photos_dir class folder {class_dir.name!r} is not in mapping_path {mapping_path}")
        photos = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
        if not photos:
            raise FashionrecError(f"photos_dir class folder {class_dir} holds no photos ({', '.join(PHOTO_SUFFIXES)})")
        items += [(f"{class_dir.name}/{p.name}", str(p)) for p in photos]
        classes += [class_dir.name] * len(photos)
    return LabelledPhotos(items, classes, mapping)


def street_crops(street_dir: Path, crops_dir: Path, progress: bool = True) -> LabelledPhotos:
    """The garments of the training part of the street photos in ``street_dir`` as labelled photos (cropped into
    ``crops_dir`` once; :func:`fashionrec.street.write_street_crops`)."""
    try:
        mapping = load_mapping(street_dir / "mapping.json")
    except FashionrecError as exc:
        raise FashionrecError(f"street_dir: {exc}") from None
    if not Path(crops_dir).parent.is_dir():
        raise FashionrecError(f"no index in {Path(crops_dir).parent}")
    write_street_crops(street_dir, crops_dir, mapping, progress=progress)
    return read_photos(crops_dir, crops_dir / CROPS_MAPPING)


def joined(first: LabelledPhotos, second: LabelledPhotos) -> LabelledPhotos:
    """Two sets of labelled photos as one; a class both name must map to the same values."""
    for name in set(first.mapping) & set(second.mapping):
        if sorted(first.mapping[name]) != sorted(second.mapping[name]):
            raise FashionrecError(f"photo class {name!r} maps to different values in the two photo sets")
    return LabelledPhotos(first.items + second.items, first.classes + second.classes,
                          {**first.mapping, **second.mapping})


def photo_features(
    photos: LabelledPhotos, index_dir: Path, model: Manifest, views: int, seed: int, progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Backbone features of ``views`` views of each photo (view 0 the photo as it is, the others random crops,
    mirrored half the time and relit) and each row's position in ``photos.items``; cached in
    ``INDEX_DIR/photo-views/`` by model, seed and the photo files' digests (see :func:`cached_views`)."""

    def transform(view: int) -> Transform | None:
        if view == 0:
            return None
        from fashionrec.backbone_train import photo_crop  # here: it loads PyTorch, as the embedder does

        def apply(key: str, image: Image.Image) -> Image.Image:
            return photo_crop(image, np.random.default_rng(_view_seed(seed, view, key)))

        return apply

    digests = {key: _file_digest(Path(path)) for key, path in photos.items}
    return cached_views(index_dir / PHOTO_DIR, index_dir, model, photos.items, digests, views, [PHOTO_VERSION, seed],
                        transform, "embedding labelled photos", progress)


def _file_digest(path: Path) -> str | None:
    try:
        return hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
    except OSError:
        return None  # reported as unreadable when it is embedded


def encode_labels(values: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Class indices and vocabulary; an empty value gets -1 (ignored by the loss)."""
    vocab = sorted({v for v in values if v})
    index = {v: n for n, v in enumerate(vocab)}
    return np.array([index.get(v, -1) for v in values], dtype=np.int64), vocab


def _view_seed(seed: int, view: int, item_id: str) -> int:
    """A stable seed per (training seed, view, product): Python's ``hash`` of a str changes between runs."""
    return int.from_bytes(hashlib.blake2b(f"{seed}/{view}/{item_id}".encode(), digest_size=8).digest(), "little")


def augmented_features(
    db: CatalogDB, index_dir: Path, model: Manifest, items: Sequence[tuple[str, str]], views: int, seed: int,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Backbone features of ``views`` photo-like views of each (id, image path) in ``items``, and for each row the
    position in ``items`` of its product (a product whose image cannot be read any more has no rows).

    Cached per chunk of ``AUGMENT_CHUNK`` products in ``INDEX_DIR/augment/`` (see :func:`cached_views`)."""

    def transform(view: int) -> Transform:
        def apply(item_id: str, image: Image.Image) -> Image.Image:
            return photo_like(image, np.random.default_rng(_view_seed(seed, view, item_id)))

        return apply

    digests = {item_id: digest for item_id, digest, _ in db.embedded_digests()}
    return cached_views(index_dir / AUGMENT_DIR, index_dir, model, items, digests, views, [AUGMENT_VERSION, seed],
                        transform, "embedding photo-like views", progress)


def cached_views(
    folder: Path, index_dir: Path, model: Manifest, items: Sequence[tuple[str, str]],
    digests: Mapping[str, str | None], views: int, key: Sequence[Any], transform: Callable[[int], Transform | None],
    desc: str, progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Backbone features of ``views`` views of each (id, image path) in ``items`` (view ``v`` made by
    ``transform(v)``, None = the image as it is), and for each row the position in ``items`` of its image (an
    image that cannot be read has no rows).

    Cached per chunk of ``AUGMENT_CHUNK`` images in ``folder``, under a name that hashes the model, ``key``, the
    view and every (id, image digest) of the chunk, written atomically: a killed run keeps its finished chunks, a
    changed image or model remakes only what it touches, and stale files in ``folder`` are removed."""
    identity = model.identity()
    wanted: dict[Path, tuple[int, range]] = {}
    for view in range(views):
        for start in range(0, len(items), AUGMENT_CHUNK):
            chunk = range(start, min(start + AUGMENT_CHUNK, len(items)))
            name_key = json.dumps([identity, *key, view, [(items[n][0], digests.get(items[n][0])) for n in chunk]])
            digest = hashlib.blake2b(name_key.encode(), digest_size=8).hexdigest()
            wanted[folder / f"view{view}-{start // AUGMENT_CHUNK:05d}-{digest}.npz"] = (view, chunk)
    features, rows = [], []
    embedder = None  # built only when something is not cached yet
    with tqdm(total=views * len(items), desc=desc, unit="img", disable=not progress) as bar:
        for path, (view, chunk) in wanted.items():
            cached = _load_chunk(path, model.dim)
            if cached is None:
                if embedder is None:
                    embedder = ModelSpec.from_manifest(model).build(cache_dir=index_dir)
                    folder.mkdir(exist_ok=True)
                cached = _embed_chunk(embedder, items, chunk, transform(view), bar)
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
        return np.zeros((0, model.dim), np.float32), np.zeros(0, np.int64)
    return np.vstack(features), np.concatenate(rows)


def _embed_chunk(embedder: Embedder, items: Sequence[tuple[str, str]], chunk: range, transform: Transform | None,
                 bar: tqdm) -> tuple[np.ndarray, np.ndarray]:
    """Embed ``items[chunk]`` through ``transform``; rows are positions in ``items``."""
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


def set_targets(codes: np.ndarray, classes: int) -> np.ndarray:
    """One-hot rows (N, classes) of class indices; an index of -1 gives an empty row (no target)."""
    sets = np.zeros((len(codes), classes), dtype=bool)
    known = codes >= 0
    sets[np.flatnonzero(known), codes[known]] = True
    return sets


def fit_head(
    features: np.ndarray, labels: dict[str, np.ndarray], config: TrainConfig, progress: bool = True,
    main_sets: np.ndarray | None = None, main: str | None = None,
) -> tuple[dict[str, np.ndarray], list[float]]:
    """Train the MLP with PyTorch; returns NumPy weights (input standardisation folded into the first layer)
    and the mean loss per epoch.

    ``labels`` maps each learnt column to its class indices; ``main`` (default: the first) is the label, the
    others are auxiliary (weighted ``config.aux_weight``). ``main_sets`` (N, label values, bool), when given,
    replaces the main labels by sets of acceptable values: the loss of a row is minus the log of the softmax mass
    on its set (:func:`set_loss`; a one-value set is cross-entropy); a row with an empty set takes no part in it."""
    import torch
    from torch import nn

    from fashionrec.backbone_train import set_loss  # here: it loads PyTorch, as above

    main = main or next(iter(labels))
    torch.manual_seed(config.seed)
    mean = features.mean(axis=0)
    std = features.std(axis=0) + 1e-6
    x = torch.from_numpy(((features - mean) / std).astype(np.float32))
    targets = {name: torch.from_numpy(values) for name, values in labels.items()}
    mlp = nn.Sequential(
        nn.Linear(x.shape[1], config.hidden), nn.ReLU(), nn.Dropout(config.dropout), nn.Linear(config.hidden, config.dim)
    )
    sizes = {name: int(values.max()) + 1 for name, values in labels.items()}
    if main_sets is not None:
        sizes[main] = max(sizes[main], main_sets.shape[1])
        sets = torch.from_numpy(np.pad(main_sets, ((0, 0), (0, sizes[main] - main_sets.shape[1]))))
    proxies = nn.ParameterDict(
        {name: nn.Parameter(torch.randn(sizes[name], config.dim) * 0.01) for name in labels}
    )
    params = list(mlp.parameters()) + list(proxies.parameters())
    optimiser = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    per_epoch = -(-len(x) // config.batch_size)
    epochs = max(config.epochs, -(-config.min_steps // per_epoch))  # at least min_steps steps
    steps = epochs * per_epoch
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss(ignore_index=-1)

    def label_loss(name: str, logits: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        if name == main and main_sets is not None:
            rows = sets[batch]
            known = rows.any(dim=1)
            return set_loss(logits[known], rows[known]) if known.any() else logits.sum() * 0.0
        target = targets[name][batch]
        if main_sets is not None and not (target >= 0).any():  # a batch of photos only: no auxiliary labels
            return logits.sum() * 0.0
        return loss_fn(logits, target)

    generator = torch.Generator().manual_seed(config.seed)
    history: list[float] = []
    mlp.train()
    with tqdm(total=steps, desc="training head", unit="batch", disable=not progress) as bar:
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=generator)
            total = 0.0
            for start in range(0, len(x), config.batch_size):
                batch = order[start : start + config.batch_size]
                z = nn.functional.normalize(mlp(x[batch]), dim=1)
                loss = sum(
                    ((1.0 if name == main else config.aux_weight)
                     * label_loss(name, z @ nn.functional.normalize(proxies[name], dim=1).T / config.temperature, batch)
                     for name in targets),
                    torch.zeros(()),  # adding to an exact zero: the same sum as before, typed as a tensor
                )
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                schedule.step()
                total += float(loss.detach()) * len(batch)
                bar.update(1)
            history.append(total / len(x))
            bar.set_postfix(loss=f"{history[-1]:.3f}")
    first, last = cast("nn.Linear", mlp[0]), cast("nn.Linear", mlp[3])
    w1 = first.weight.detach().numpy().T / std[:, None]
    b1 = first.bias.detach().numpy() - (mean / std) @ first.weight.detach().numpy().T
    weights = {"w1": w1, "b1": b1, "w2": last.weight.detach().numpy().T, "b2": last.bias.detach().numpy()}
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}, history


def train_index(
    index_dir: str | os.PathLike[str], config: TrainConfig = TrainConfig(), *, index_kind: IndexKind = "auto",
    progress: bool = True, photos_dir: str | os.PathLike[str] | None = None,
    mapping_path: str | os.PathLike[str] | None = None, photo_views: int = PHOTO_VIEWS,
    photo_share: float = PHOTO_SHARE, street_dir: str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Train a head on the index's stored features, save it atomically, re-publish the FAISS file with it.

    The head learns ``config.label`` (default: the label column the index records, fashionrec.columns; a label
    given here becomes the index's recorded label once the head is saved, so evaluation and the neighbours' vote
    follow it) and, beside it, ``config.aux_labels`` (default: the auxiliary labels and colour it records).

    With ``photos_dir`` (``photos_dir/<class>/*.jpg``) and ``mapping_path`` (JSON {class: [label value, ...]}),
    labelled real photos join the training: ``photo_views`` views of each (view 0 the photo itself), embedded with
    the index's own model and cached in ``INDEX_DIR/photo-views/``, with the set of their class's label values as
    target (no auxiliary labels). Their rows are repeated until they make about ``photo_share`` of the training
    rows (never dropped when they already make more). Photos whose class maps to no label value of the index are
    counted in the result and left out. With ``street_dir`` (the shared ``street-photos`` layout), the crops of the
    garments of its training part join them (labelled by ``street_dir/mapping.json``; see the module's docstring).

    A kill before the head is written leaves the old head and index untouched; the head and the FAISS file are
    each replaced atomically, and a kill between the two renames is detected by ``Recommender.open`` (fingerprint
    mismatch) and repaired by re-running ``fashionrec train`` or ``fashionrec index``.
    """
    config.check()
    photos = None
    worn = 0  # crops of worn garments learnt from (the kind steering's vote relies on them, fashionrec.kinds)
    path = Path(index_dir)
    if photos_dir is not None or mapping_path is not None or street_dir is not None:
        if (photos_dir is None) != (mapping_path is None):
            raise FashionrecError("photos_dir and mapping_path go together: a folder per photo class and the JSON "
                                  "naming each class's label values")
        if not 1 <= photo_views <= 16:
            raise FashionrecError(f"photo_views must be between 1 and 16, got {photo_views}")
        if not 0 < photo_share < 0.9:
            raise FashionrecError(f"photo_share must be in (0, 0.9), got {photo_share}")
        if photos_dir is not None and mapping_path is not None:
            photos = read_photos(photos_dir, mapping_path)
        if street_dir is not None:
            street = street_crops(Path(street_dir), path / STREET_CROPS_DIR, progress)
            photos = street if photos is None else joined(photos, street)
            worn = len(street.items)
    db, model = Index.open_database(path)
    try:
        roles = read_roles(db)
        label = config.label or roles.require_label(f"index in {path}")
        if label not in db.columns:
            raise FashionrecError(f"label {label!r} is not a column of the index in {path}; columns: "
                                  f"{', '.join(db.columns) or '(none)'}")
        aux = roles.learnt_columns if config.aux_labels is None else config.aux_labels
        unknown = [c for c in aux if c not in db.columns]
        if config.aux_labels is not None and unknown:
            raise FashionrecError(f"aux_labels: {unknown[0]!r} is not a column of the index in {path}")
        ids, features = db.vectors(model.dim)
        if len(ids) < 10:
            raise FashionrecError(f"index in {path} has {len(ids)} embedded products; training needs at least 10")
        items = db.get_many(ids)
        held = holdout_mask(ids, config.holdout, config.seed)
        names = [label] + [c for c in aux if c in db.columns and c != label]
        labels, vocab = {}, {}
        for name in names:
            codes, vocab[name] = encode_labels([items[i].metadata.get(name, "") for i in ids])
            labels[name] = codes[~held]
        if len(vocab[label]) < 2 or not (labels[label] >= 0).any():
            raise FashionrecError(f"label {label!r} of the index in {path} has {len(vocab[label])} distinct value(s) "
                                  "among the training products; training needs at least 2 kinds of product")
        train_items = [(i, items[i].image_path) for i, h in zip(ids, held) if not h]
        views, rows = augmented_features(db, path, model, train_items, config.augment_views, config.seed, progress)
        x = np.vstack([features[~held], views])
        y = {name: np.concatenate([codes, codes[rows]]) for name, codes in labels.items()}
        main_sets = None
        photo_stats: dict[str, Any] = {}
        if photos is not None:
            p_x, p_sets, photo_stats = _photo_rows(photos, vocab[label], path, model, photo_views, photo_share,
                                                   len(x), config.seed, progress)
            main_sets = np.vstack([set_targets(y[label], len(vocab[label])), p_sets])
            x = np.vstack([x, p_x])
            y = {name: np.concatenate([codes, np.full(len(p_x), -1, np.int64)]) for name, codes in y.items()}
        weights, history = fit_head(x, y, config, progress, main_sets=main_sets, main=label)
        backbone_weight = default_backbone_weight(model) if config.backbone_weight is None else config.backbone_weight
        meta = {
            "model": model.to_dict(),
            "config": {**asdict(config), "backbone_weight": backbone_weight},
            "backbone_weight": backbone_weight,
            "label": label,
            "labels": {name: len(v) for name, v in vocab.items()},
            "trained_on": int((~held).sum()),
            "augmented_views": len(rows),
            "holdout_ids": [i for i, h in zip(ids, held) if h],
        }
        if photos is not None:
            meta["photos"] = {**photo_stats, "views": photo_views, "share": photo_share}
        if worn:
            meta["worn_garments"] = worn
        head = Head(weights, meta)
        head.save(path)
        if label != roles.label:
            write_roles(db, replace(roles, label=label, aux=tuple(a for a in roles.aux if a != label)))
        store = publish_faiss(db, path, model, index_kind)
        return TrainResult(
            trained_on=int((~held).sum()), held_out=int(held.sum()), classes=len(vocab[label]),
            final_loss=history[-1], head_fingerprint=head.fingerprint, index_kind=store.kind, history=history,
            views=len(rows), views_unreadable=config.augment_views * len(train_items) - len(rows),
            **{k: v for k, v in photo_stats.items() if k != "repeat"}, label=label, aux_labels=names[1:],
        )
    finally:
        db.close()


def _photo_rows(
    photos: LabelledPhotos, types: Sequence[str], index_dir: Path, model: Manifest, views: int, share: float,
    catalogue_rows: int, seed: int, progress: bool,
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """The photos' training rows (features, target sets over ``types``), repeated to about ``share`` of all
    rows, and what went into them (the counts of :class:`TrainResult` and the repeat)."""
    index = {t: n for n, t in enumerate(types)}
    sets = np.zeros((len(photos.items), len(types)), dtype=bool)
    for n, name in enumerate(photos.classes):
        sets[n, [index[t] for t in photos.mapping[name] if t in index]] = True
    mapped = np.asarray(sets.any(axis=1), dtype=bool)
    features, rows = photo_features(photos, index_dir, model, views, seed, progress)
    keep = mapped[rows]
    features, rows = features[keep], rows[keep]
    read = np.unique(rows)
    repeat = max(1, round(share * catalogue_rows / ((1 - share) * len(rows)))) if len(rows) else 0
    stats = {
        "photos": len(read), "photo_classes": len({photos.classes[n] for n in read}), "photo_rows": repeat * len(rows),
        "photos_unmapped": int((~mapped).sum()), "photos_unreadable": int(mapped.sum()) - len(read), "repeat": repeat,
    }
    return np.tile(features, (repeat, 1)), np.tile(sets[rows], (repeat, 1)), stats
