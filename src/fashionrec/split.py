"""The product-level train / held-out split, shared by every trainer so they hold out the same products.

A product is held out when a seeded hash of its id falls below ``fraction``: the decision depends on the id alone,
not on the order or the size of the catalogue, so the fashion backbone (trained on a catalogue folder) and a head
(trained on an index of the same catalogue) keep the very same products out, and evaluation can query with them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np


def is_held_out(item_id: str, fraction: float, seed: int) -> bool:
    """Whether ``item_id`` is in the held-out share ``fraction`` for ``seed``."""
    digest = hashlib.blake2b(f"holdout/{seed}/{item_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64 < fraction


def holdout_mask(ids: Sequence[str], fraction: float, seed: int) -> np.ndarray:
    """Boolean mask over ``ids`` of the held-out products (about ``fraction`` of them)."""
    return np.array([is_held_out(i, fraction, seed) for i in ids], dtype=bool)


STREET_VALIDATION = 0.25
"""Share of the street photos (by name) kept for validation: the localiser, the kind head and the embedding never
train on them, and every street-photo figure is measured on them."""


def is_validation_photo(name: str) -> bool:
    """Whether the street photo ``name`` (its file stem) is in the validation part."""
    return is_held_out(f"street/{name}", STREET_VALIDATION, 0)
