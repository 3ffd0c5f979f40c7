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
    p.add_argument("--metadata", help="metadata CSV (default: styles.csv or metadata.csv in the catalogue folder)")
    p.add_argument("--id-column", default="id", help="id column of the CSV (default: %(default)s)")
    p.add_argument("--image-pattern", default="images/{id}.jpg",
                   help="image path relative to the catalogue folder, formatted with the row (default: %(default)s)")
    p.add_argument("--label", metavar="COLUMN",
                   help="the column that says which products are the same kind (default: articleType, category, "
                   "product_type, type or class, the first present)")
    p.add_argument("--colour-column", metavar="COLUMN",
                   help="the colour column (default: baseColour, colour or color, the first present; '' for none)")
    p.add_argument("--aux-labels", metavar="A,B",
                   help="further label columns to learn (default: subCategory,gender where present; '' for none)")
    p.add_argument("--output", required=True, help="weights file to write (a JSON card is written beside it)")
    p.add_argument("--photos", default=None, help="folder of labelled real photos, one sub-folder per class")
    p.add_argument("--mapping", default=None, help="JSON: photo class -> list of acceptable values of the label")
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
    from fashionrec.backbone_train import BackboneConfig, CatalogueLayout, train_backbone
    from fashionrec.columns import parse_columns

    config = BackboneConfig(**{name: getattr(args, name) for name in _DEFAULTS})
    layout = CatalogueLayout(args.metadata, args.id_column, args.image_pattern, args.label, args.colour_column,
                             parse_columns(args.aux_labels))
    result = train_backbone(args.catalogue, args.output, photos_dir=args.photos, mapping_path=args.mapping,
                            work_dir=args.work_dir, config=config, progress=not args.json, layout=layout)
    print(json.dumps(asdict(result)) if args.json else result.summary())
    return 0
