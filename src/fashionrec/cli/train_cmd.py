"""``fashionrec train``: train the projection head on the index's stored features, then re-publish the index."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from fashionrec.cli.common import add_index_dir, add_json
from fashionrec.columns import parse_columns
from fashionrec.stores.faiss_store import KINDS
from fashionrec.train import BLEND_WEIGHT, PHOTO_SHARE, PHOTO_VIEWS, TrainConfig, train_index

DEFAULTS = TrainConfig()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a projection head on the catalogue's labels (frozen backbone)")
    add_index_dir(p)
    add_json(p)
    p.add_argument("--label", metavar="COLUMN",
                   help="the column that says which products are the same kind, to learn (default: the index's "
                   "recorded label, `fashionrec info`); a new one becomes the index's label once the head is saved")
    p.add_argument("--aux-labels", metavar="A,B",
                   help="columns learnt beside the label with --aux-weight (default: the index's recorded auxiliary "
                   "labels and colour column; '' for none)")
    p.add_argument("--epochs", type=int, default=DEFAULTS.epochs, help="passes over the data (default: %(default)s)")
    p.add_argument("--min-steps", type=int, default=DEFAULTS.min_steps,
                   help="more passes when the epochs make fewer optimiser steps than this: a small catalogue is not "
                   "left half-trained (default: %(default)s; 0 = exactly --epochs)")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seed of the split and the training")
    p.add_argument("--holdout", type=float, default=DEFAULTS.holdout,
                   help="share of products kept out of training for evaluation (default: %(default)s)")
    p.add_argument("--dim", type=int, default=DEFAULTS.dim, help="output dimension (default: %(default)s)")
    p.add_argument("--hidden", type=int, default=DEFAULTS.hidden, help="hidden units (default: %(default)s)")
    p.add_argument("--lr", type=float, default=DEFAULTS.lr, help="peak learning rate (default: %(default)s)")
    p.add_argument("--aux-weight", type=float, default=DEFAULTS.aux_weight,
                   help="loss weight of the auxiliary labels vs the label (default: %(default)s)")
    p.add_argument("--backbone-weight", type=float, default=DEFAULTS.backbone_weight,
                   help="weight of the raw backbone features kept beside the head's output; 0 = head output only, "
                   "--dim wide (default: 0 for the fashion model, whose own output is already fashion-tuned; "
                   f"{BLEND_WEIGHT} for ImageNet backbones, the best measured for real photos)")
    p.add_argument("--augment-views", type=int, default=DEFAULTS.augment_views,
                   help="photo-like views (new background, tilt, crop, light) of each training product to learn from "
                   "as well; each view embeds the catalogue once more, cached in INDEX_DIR/augment (default: "
                   "%(default)s; 0 = studio shots only)")
    p.add_argument("--photos", metavar="DIR",
                   help="labelled real photos to learn from too: DIR/<class>/*.jpg (the layout of clothing-photos); "
                   "needs --mapping")
    p.add_argument("--mapping", metavar="JSON",
                   help="JSON object naming each photo class's acceptable values of the label column, e.g. "
                   "{\"hat\": [\"Caps\", \"Hat\"]}")
    p.add_argument("--street", metavar="DIR",
                   help="street photos of whole outfits with label maps (the layout of street-photos): the garments "
                   "of their training part, cropped, join the labelled photos (never the validation part)")
    p.add_argument("--photo-views", type=int, default=PHOTO_VIEWS,
                   help="views of each photo to learn from: the photo itself, then random crops (mirrored, relit); "
                   "cached in INDEX_DIR/photo-views (default: %(default)s)")
    p.add_argument("--photo-share", type=float, default=PHOTO_SHARE,
                   help="photo rows are repeated until they make about this share of the training rows (default: "
                   "%(default)s)")
    p.add_argument("--index-kind", default="auto", choices=["auto", *KINDS],
                   help="FAISS index kind of the re-published index (default: %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = TrainConfig(epochs=args.epochs, min_steps=args.min_steps, seed=args.seed, holdout=args.holdout, dim=args.dim, hidden=args.hidden,
                         lr=args.lr, aux_weight=args.aux_weight, label=args.label,
                         aux_labels=parse_columns(args.aux_labels),
                         backbone_weight=args.backbone_weight, augment_views=args.augment_views)
    result = train_index(args.index_dir, config, index_kind=args.index_kind, progress=not args.json,
                         photos_dir=args.photos, mapping_path=args.mapping, street_dir=args.street,
                         photo_views=args.photo_views,
                         photo_share=args.photo_share)
    print(json.dumps(asdict(result)) if args.json else result.summary())
    return 0
