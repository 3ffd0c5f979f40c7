"""Kind steering: the kind classifier recognises the garment class of a query, steers plain queries to that class's
catalogue values when confident, applies only to indexes of the model whose input it reads, and can be switched
off; its class labels for training come from the class file."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fashionrec import kinds
from fashionrec.errors import FashionrecError
from fashionrec.garments import load_classes
from fashionrec.imageio import load_image
from fashionrec.kind_train import class_of_values
from fashionrec.kinds import OTHER, KindClassifier, kind_classifier_for
from fashionrec.manifest import Manifest
from fashionrec.recommend import Recommender
from tests.conftest import DEMO_QUERIES

CLASSES = load_classes()
FASHION = Manifest(name="fashion", dim=256, image_size=128)


@pytest.fixture(scope="module")
def classifier() -> KindClassifier:
    return KindClassifier.open()


def _batch(rec: Recommender, *names: str) -> np.ndarray:
    return rec.encoder.preprocess([load_image(DEMO_QUERIES / n) for n in names])


def test_the_demo_photos_are_recognised(classifier: KindClassifier, demo_recommender: Recommender) -> None:
    assert set(classifier.classes) - {OTHER} <= set(CLASSES.names) and OTHER in classifier.classes
    batch = _batch(demo_recommender, "dress.jpg", "pants.jpg", "shoes.jpg", "t-shirt.jpg")
    assert [k[0] for k in classifier.kinds(batch)] == ["dress", "trousers", "shoes", "top"]
    probabilities = classifier.probabilities(batch)
    assert probabilities.shape == (4, len(classifier.classes)) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    assert classifier.probabilities(batch[:0]).shape == (0, len(classifier.classes))


def test_unsure_or_not_a_garment_names_nothing(classifier: KindClassifier, demo_recommender: Recommender) -> None:
    batch = _batch(demo_recommender, "pants.jpg", "dress.jpg")
    assert classifier.kinds(batch)[0] == ("trousers",)  # sure: one class
    hesitant = KindClassifier.open()
    hesitant.threshold = 0.999  # four classes would be needed: too unsure to steer
    assert hesitant.kinds(batch) == [(), ()]
    top = np.sort(classifier.probabilities(batch)[1])[::-1]
    hesitant.threshold = float(top[0] + top[1] / 2)  # the two likeliest classes are needed to reach it
    assert hesitant.kinds(batch)[1][0] == "dress" and len(hesitant.kinds(batch)[1]) == 2
    catalogue = demo_recommender.encoder.preprocess([load_image(p) for p in sorted(
        (DEMO_QUERIES.parent / "catalog" / "images").glob("*.jpg"))[:60]])
    assert () in classifier.kinds(catalogue)  # among 60 catalogue products some are no garment (watches, perfume)


def test_a_tampered_classifier_turns_steering_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (kinds.KIND_FILE, kinds.KIND_CARD):
        shutil.copy(kinds.weights_folder() / name, tmp_path / name)
    card = json.loads((tmp_path / kinds.KIND_CARD).read_text())
    (tmp_path / kinds.KIND_CARD).write_text(json.dumps({**card, "sha256": "0" * 64}))
    monkeypatch.setattr(kinds, "weights_folder", lambda: tmp_path)
    with pytest.raises(FashionrecError, match="does not match its recorded checksum"):
        KindClassifier.open()
    assert kind_classifier_for(FASHION) is None


def test_only_the_model_whose_input_it_reads_is_steered() -> None:
    assert kind_classifier_for(FASHION) is not None
    assert kind_classifier_for(replace(FASHION, name="efficientnet-lite0", dim=1280)) is None
    assert kind_classifier_for(replace(FASHION, weights="/my/fashion.pt")) is None
    assert kind_classifier_for(replace(FASHION, image_size=96)) is None


def test_catalogue_values_name_the_most_specific_class() -> None:
    assert class_of_values({"Skirts"}, CLASSES) == "skirt"
    assert class_of_values({"Leggings"}, CLASSES) == "legwear"  # also a kind of trousers, but legwear is narrower
    assert class_of_values({"Tshirts", "Shirts", "Sweatshirts", "Tops", "Sweaters"}, CLASSES) == "top"
    assert class_of_values({"Deodorant"}, CLASSES) == OTHER


def test_plain_queries_are_steered_to_their_kind_and_can_be_left_alone(demo_recommender: Recommender) -> None:
    photo = DEMO_QUERIES / "dress.jpg"
    steered = demo_recommender.recommend(photo, k=5)
    assert all(r.metadata["articleType"] in CLASSES.values("dress") for r in steered)
    before = demo_recommender.ranking
    try:
        demo_recommender.ranking = replace(before, steer_kind=False)
        plain = demo_recommender.recommend(photo, k=5)
        assert demo_recommender.encode_queries(_batch(demo_recommender, "dress.jpg"))[1] == [()]
    finally:
        demo_recommender.ranking = before
    assert any(r.metadata["articleType"] not in CLASSES.values("dress") for r in plain)  # a t-shirt or two
    mine = demo_recommender.recommend(photo, k=5, filters={"articleType": ["Tshirts"]})
    assert mine and all(r.metadata["articleType"] == "Tshirts" for r in mine)  # the caller's filter wins


def test_a_kind_the_catalogue_lacks_is_answered_unsteered(demo_recommender: Recommender) -> None:
    dress = DEMO_QUERIES / "dress.jpg"
    footwear = {"masterCategory": ["Footwear"]}  # no dress among them: the kind cannot be honoured
    assert not demo_recommender.recommend_vectors(demo_recommender.embed([dress]), 3, demo_recommender.kind_filters(
        demo_recommender._filters(footwear), ("dress",)))[0]
    results = demo_recommender.recommend(dress, k=3, filters=footwear)
    assert len(results) == 3 and all(r.metadata["masterCategory"] == "Footwear" for r in results)


def test_the_http_api_steers_plain_queries_too(demo_client: object) -> None:
    from tests.conftest import upload

    body = upload(demo_client, (DEMO_QUERIES / "dress.jpg").read_bytes(), params={"k": 5}).json()  # type: ignore[arg-type]
    assert len(body["results"]) == 5
    assert all(r["metadata"]["articleType"] in CLASSES.values("dress") for r in body["results"])
