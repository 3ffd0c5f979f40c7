"""fashionrec.query: the one path from a photo to a searched vector (decode, crop, preprocess, embed, project),
the same for the library, the API and evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionrec.evaluate import photo_queries
from fashionrec.head import Head
from fashionrec.imageio import load_image
from fashionrec.localise import localise
from fashionrec.query import QueryEncoder
from fashionrec.recommend import Recommender
from tests.conftest import DEMO_IMAGES


@pytest.fixture(scope="module")
def encoder(fast_embedder: object) -> QueryEncoder:
    return QueryEncoder(fast_embedder)  # type: ignore[arg-type]


def test_encode_is_decode_preprocess_embed(encoder: QueryEncoder) -> None:
    path = DEMO_IMAGES[0]
    by_hand = encoder.embedder.embed_arrays(encoder.embedder.preprocess(load_image(path))[None])
    for source in (path, str(path), path.read_bytes(), Image.open(path)):
        np.testing.assert_allclose(encoder.encode([source]), by_hand, atol=1e-5)
    assert np.allclose(np.linalg.norm(by_hand, axis=1), 1, atol=1e-4)


def test_a_box_embeds_that_region_only(encoder: QueryEncoder) -> None:
    image = load_image(DEMO_IMAGES[1])
    w, h = image.size
    region = image.crop((0, 0, w // 2, h // 2))
    np.testing.assert_allclose(encoder.encode([image], box=f"0,0,{w // 2},{h // 2}"), encoder.encode([region]),
                               atol=1e-5)
    assert not np.allclose(encoder.encode([image], box="0,0,0.5,0.5"), encoder.encode([image]), atol=1e-3)


def test_localise_crops_to_the_garment_first(encoder: QueryEncoder) -> None:
    image = load_image(DEMO_IMAGES[2])
    cropping = QueryEncoder(encoder.embedder, localise=True)
    np.testing.assert_allclose(cropping.encode([image]), encoder.encode([localise(image)]), atol=1e-5)
    assert cropping.prepare(image, box="0,0,0.5,0.5").size != localise(image).size  # a box wins over localising


def test_a_head_projects_into_the_searched_space(encoder: QueryEncoder, trained_index: Path) -> None:
    head = Head.load(trained_index)
    projecting = QueryEncoder(encoder.embedder, head)
    features = encoder.encode([DEMO_IMAGES[3]])
    np.testing.assert_allclose(projecting.encode([DEMO_IMAGES[3]]), head.apply(features), atol=1e-5)
    assert projecting.encode([DEMO_IMAGES[3]]).shape == (1, head.dim)


def test_the_recommender_and_evaluation_embed_through_it(trained_index: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos" / "shirts"
    folder.mkdir(parents=True)
    (folder / "a.jpg").write_bytes(DEMO_IMAGES[4].read_bytes())
    with Recommender.open(trained_index) as rec:
        expected = rec.encoder.encode([DEMO_IMAGES[4]])
        np.testing.assert_allclose(rec.embed([DEMO_IMAGES[4]]), expected, atol=1e-6)
        [query] = photo_queries(rec, tmp_path / "photos", {"shirts": ["Shirts"]}, rec.head, progress=False)
        np.testing.assert_allclose(query.vector, expected[0], atol=1e-5)
