"""``fashionrec train-backbone``: fine-tune the fashion backbone on a catalogue folder and labelled real photos."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from fashionrec.cli.common import add_json

# Mirrors fashionrec.backbone_train.BackboneConfig's defaults without importing PyTorch for --help.
_DEFAULTS = {"image_size": 128, "dim": 256, "frozen_blocks": 8, "catalogue_views": 2, "photo_views": 8,
             "steps": 2500, "batch_size": 128, "photo_share": 0.25, "lr": 2e-3, "backbone_lr": 5e-4,
             "holdout": 0.1, "seed": 0, "max_products": 0, "checkpoint_every": 100, "init": ""}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-backbone", help="fine-tune the fashion backbone (the default model) on a catalogue "
                       "and labelled real photos; checkpointed, a rerun resumes")
    p.add_argument("catalogue", help="catalogue folder (styles.csv + images/), the one `fashionrec index` reads")
    p.add_argument("--output", required=True, help="weights file to write (a JSON card is written beside it)")
    p.add_argument("--photos", default=None, help="folder of labelled real photos, one sub-folder per class")
    p.add_argument("--mapping", default=None, help="JSON: photo class -> list of acceptable articleTypes")
    p.add_argument("--work-dir", default="training-runs/fashion",
                   help="cache of frozen features and checkpoints (default: %(default)s)")
    add_json(p)
    for name, value in _DEFAULTS.items():
        if name != "init":
            p.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value,
                           help="(default: %(default)s)")
    p.add_argument("--init", default="", help="a previous run's checkpoint.pt to continue from (its network and "
                   "proxies, with a fresh optimiser and schedule)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fashionrec.backbone_train import BackboneConfig, train_backbone

    config = BackboneConfig(**{name: getattr(args, name) for name in _DEFAULTS})
    result = train_backbone(args.catalogue, args.output, photos_dir=args.photos, mapping_path=args.mapping,
                            work_dir=args.work_dir, config=config, progress=not args.json)
    print(json.dumps(asdict(result)) if args.json else result.summary())
    return 0
