"""``fashionrec train-text``: learn the text-image alignment that text search uses, on the indexed catalogue."""

from __future__ import annotations

import argparse
import json

from fashionrec.cli.common import add_index_dir, add_json


def register(sub: argparse._SubParsersAction) -> None:
    from fashionrec.text.train import AlignmentConfig

    d = AlignmentConfig()
    p = sub.add_parser("train-text", help="train text search (align a sentence encoder with the image vectors)")
    add_index_dir(p)
    p.add_argument("--dim", type=int, default=d.dim, help="shared space dimension (default: %(default)s)")
    p.add_argument("--hidden", type=int, default=d.hidden,
                   help="hidden width of the image head, 0 for a single linear layer (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="default: %(default)s")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="pairs per step (default: %(default)s)")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (default: %(default)s)")
    p.add_argument("--holdout", type=float, default=d.holdout,
                   help="fraction of products kept out of training, recorded for evaluation (default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="holdout split and initialisation (default: %(default)s)")
    p.add_argument("--no-captions", dest="captions", action="store_false",
                   help="train on product names only, without templated metadata captions")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fashionrec.text.train import AlignmentConfig, train_alignment

    config = AlignmentConfig(dim=args.dim, hidden=args.hidden, epochs=args.epochs, batch_size=args.batch_size,
                         lr=args.lr, holdout=args.holdout, seed=args.seed, captions=args.captions)
    result = train_alignment(args.index_dir, config, progress=not args.json)
    if args.json:
        print(json.dumps({"trained": result.trained, "held_out": result.held_out, "texts": result.texts,
                          "final_loss": round(result.final_loss, 4)}))
    else:
        print(result.summary())
    return 0
