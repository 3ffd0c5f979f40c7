"""Property-based tests (hypothesis): preprocessing and filters hold for any input, not just the examples we thought of.

- preprocessing: any image size and mode becomes a square of the model's side, the right shape, finite values;
- ``pad_to_square``: square, the longer side, the original pixels centred, the rest white;
- filters: ``parse_filters`` + ``MetadataColumns.mask`` agree with a naive Python filter on random tables;
- ``FaissStore.search`` with random filters (and exclusions) returns exactly min(k, matching) hits, all matching,
  best first, for every index kind (approximate ones included: a short answer is completed exactly).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fashionrec.embedders import Embedder
from fashionrec.errors import FashionrecError
from fashionrec.filters import MetadataColumns, normalise_filters, parse_filters
from fashionrec.imageio import WHITE, load_image, pad_to_square
from fashionrec.modelspec import ModelSpec
from fashionrec.stores.faiss_store import FaissStore, build_index

MODES = ["RGB", "RGBA", "RGBa", "RGBX", "L", "LA", "P", "PA", "CMYK", "1", "I", "I;16", "I;16B", "F", "YCbCr",
         "HSV", "LAB"]
COLUMNS = ["gender", "colour", "season"]
# Few distinct values per column, so random filters match some rows and miss others.
VALUES = st.sampled_from(["", "Men", "Women", "Women\x00", "Red", "Blue", "Navy Blue", "Fall", "x,y", "é", "1"])
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return ModelSpec("efficientnet-lite0", 64).build()


def random_image(mode: str, width: int, height: int, seed: int) -> Image.Image:
    """An image of any mode with random content (noise, so odd conversions would show as odd values)."""
    noise = np.random.default_rng(seed).integers(0, 256, size=(height, width, 4), dtype=np.uint8)
    return Image.fromarray(noise, "RGBA").convert(mode)


# preprocessing --------------------------------------------------------------------------------------------

@FAST
@given(mode=st.sampled_from(MODES), width=st.integers(1, 700), height=st.integers(1, 700), seed=st.integers(0, 99))
def test_any_image_preprocesses_to_a_finite_square_tensor(
    embedder: Embedder, mode: str, width: int, height: int, seed: int
) -> None:
    rgb = load_image(random_image(mode, width, height, seed))
    assert rgb.mode == "RGB" and rgb.size == (width, height)
    tensor = embedder.preprocess(rgb)
    assert tensor.shape == (3, embedder.image_size, embedder.image_size) and tensor.dtype == np.float32
    assert np.isfinite(tensor).all()


@FAST
@given(width=st.integers(1, 400), height=st.integers(1, 400), colour=st.tuples(*[st.integers(0, 255)] * 3))
def test_pad_to_square_centres_the_image_on_white(width: int, height: int, colour: tuple[int, int, int]) -> None:
    img = Image.new("RGB", (width, height), colour)
    square = pad_to_square(img)
    side = max(width, height)
    assert square.size == (side, side) and square.mode == "RGB"
    pixels = np.asarray(square)
    left, top = (side - width) // 2, (side - height) // 2
    assert (pixels[top : top + height, left : left + width] == colour).all()
    outside = np.ones((side, side), dtype=bool)
    outside[top : top + height, left : left + width] = False
    assert (pixels[outside] == WHITE).all()
    assert abs((side - width) - 2 * left) <= 1 and abs((side - height) - 2 * top) <= 1  # centred


# filters --------------------------------------------------------------------------------------------------

tables = st.lists(st.fixed_dictionaries({c: VALUES for c in COLUMNS}), min_size=0, max_size=60)
filter_maps = st.dictionaries(
    st.sampled_from(COLUMNS), st.lists(VALUES.filter(lambda v: v and "," not in v), min_size=1, max_size=3),
    max_size=3,
)


def naive_mask(rows: list[dict[str, str]], filters: dict[str, list[str]]) -> list[bool]:
    return [all(row[c] in values for c, values in filters.items()) for row in rows]


def as_specs(filters: dict[str, list[str]]) -> list[str]:
    """The same filters as CLI/API strings, one value per string for some columns (repeats add values)."""
    specs: list[str] = []
    for column, values in filters.items():
        specs += [f"{column}={values[0]}", f" {column} = {','.join(values)} "]
    return specs


@settings(max_examples=150, deadline=None)
@given(rows=tables, filters=filter_maps)
def test_parsed_filter_mask_matches_a_naive_filter(rows: list[dict[str, str]], filters: dict[str, list[str]]) -> None:
    parsed = parse_filters(as_specs(filters), COLUMNS)
    assert parsed == {c: frozenset(v) for c, v in filters.items()}
    mask = MetadataColumns(COLUMNS, rows).mask(parsed)
    if not filters:
        assert mask is None
    else:
        assert mask is not None and mask.tolist() == naive_mask(rows, filters)


@settings(max_examples=60, deadline=None)
@given(spec=st.text(max_size=30))
def test_parse_filters_accepts_or_says_what_is_wrong(spec: str) -> None:
    try:
        parsed = parse_filters([spec], COLUMNS)
    except FashionrecError as exc:
        assert "filter" in str(exc)
    else:
        [(column, values)] = parsed.items()
        assert column in COLUMNS and values and all(v == v.strip() and v and "," not in v for v in values)


def test_unknown_filter_columns_are_refused() -> None:
    with pytest.raises(FashionrecError, match="unknown filter column 'price'"):
        normalise_filters({"price": ["1"]}, COLUMNS)
    with pytest.raises(FashionrecError, match="unknown filter column"):
        MetadataColumns(COLUMNS, []).mask({"price": frozenset({"1"})})


class RandomStore(NamedTuple):
    """A store with the rows and vectors it was built from (short repr: hypothesis prints failing examples)."""

    store: FaissStore
    rows: list[dict[str, str]]
    vectors: np.ndarray

    def __repr__(self) -> str:
        return f"RandomStore(kind={self.store.kind!r}, n={len(self.rows)})"


@st.composite
def stores(draw: st.DrawFn) -> RandomStore:
    """A store of random unit vectors and random metadata; ``kind`` covers exact and approximate indexes."""
    kind = draw(st.sampled_from(["flat", "hnsw", "ivf", "ivfsq", "pcaivfsq"]))
    n = draw(st.integers(0 if kind == "flat" else 1, 1200))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, 8)).astype(np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-6)
    rows = [{c: str(rng.choice(["a", "b", "c", "d"])) for c in COLUMNS} for _ in range(n)]
    index, resolved = build_index(vectors, kind)
    store = FaissStore(index, [f"id{i}" for i in range(n)], resolved, {}, MetadataColumns(COLUMNS, rows))
    return RandomStore(store, rows, vectors)


@settings(max_examples=60, deadline=None)
@given(
    data=stores(),
    k=st.integers(1, 1000),
    filters=st.dictionaries(st.sampled_from(COLUMNS), st.sets(st.sampled_from("abcde"), min_size=1), max_size=2),
    excluded=st.sets(st.integers(0, 1200), max_size=3),
    seed=st.integers(0, 99),
)
def test_filtered_search_returns_min_k_matching_hits(
    data: RandomStore, k: int, filters: dict[str, set[str]],
    excluded: set[int], seed: int,
) -> None:
    store, rows, vectors = data
    exclude = {f"id{i}" for i in excluded}
    query = np.random.default_rng(seed).normal(size=(2, 8)).astype(np.float32)
    lists = {c: sorted(v) for c, v in filters.items()}
    allowed = {f"id{i}" for i, ok in enumerate(naive_mask(rows, lists)) if ok} - exclude
    for hits in store.search(query, k, normalise_filters(filters, COLUMNS), exclude):
        ids = [h.id for h in hits]
        assert len(ids) == min(k, len(allowed)), store.kind
        assert len(set(ids)) == len(ids) and set(ids) <= allowed
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True) or np.allclose(scores, sorted(scores, reverse=True), atol=1e-5)
    if store.kind == "flat" and allowed:  # the exact index finds the true best match
        best = max(allowed, key=lambda i: float(vectors[int(i[2:])] @ query[0]))
        top = store.search(query[:1], 1, normalise_filters(filters, COLUMNS), exclude)[0][0]
        assert np.isclose(top.score, float(vectors[int(best[2:])] @ query[0]), atol=1e-5)
