"""Shop the look: Recommender.look answers each garment of a street photo on its own, among its class's catalogue
values, within the caller's filters; the steering rule itself is a pure function."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from fashionrec.garments import load_classes
from fashionrec.look import LookGarment, steered
from fashionrec.recommend import Recommender
from tests.test_garments import STREET_PHOTO

CLASSES = load_classes()


def test_steering_adds_the_class_values_unless_the_caller_filters_that_column() -> None:
    assert steered({}, CLASSES, "skirt", ["articleType", "gender"]) == {"articleType": frozenset({"Skirts"})}
    mine = {"articleType": frozenset({"Dresses"})}
    assert steered(mine, CLASSES, "skirt", ["articleType"]) is mine  # the caller's choice wins
    assert steered({"gender": frozenset({"Women"})}, CLASSES, "skirt", ["articleType", "gender"]) == {
        "gender": frozenset({"Women"}), "articleType": frozenset({"Skirts"})}
    assert steered({}, CLASSES, "skirt", ["category"]) == {}  # a catalogue without the column: nothing to steer


def test_a_look_answers_each_garment_among_its_kind(demo_recommender: Recommender) -> None:
    photo = Image.open(STREET_PHOTO)
    look = demo_recommender.look(STREET_PHOTO, k=3)
    assert len(look) >= 3 and [g.score for g in look] == sorted((g.score for g in look), reverse=True)
    for garment in look:
        x, y, w, h = garment.box
        assert x + w <= photo.width and y + h <= photo.height
        assert 1 <= len(garment.results) <= 3
        assert all(r.metadata["articleType"] in CLASSES.values(garment.label) for r in garment.results)
        as_dict = garment.to_dict()
        assert as_dict["label"] == garment.label and as_dict["box"] == list(garment.box)
        assert [r["id"] for r in as_dict["results"]] == [r.id for r in garment.results]
    unsteered = demo_recommender.look(photo, k=3, steer=False)
    # the same garments searched everywhere; steered, a garment the catalogue has nothing of is left out (the demo
    # catalogue has no coats)
    assert {g.label for g in look} < {g.label for g in unsteered} and "outerwear" not in {g.label for g in look}
    assert any(r.metadata["articleType"] not in CLASSES.values(g.label) for g in unsteered for r in g.results)


def test_the_kind_classifier_gives_each_garment_a_second_opinion(demo_recommender: Recommender,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def in_class(garment: LookGarment) -> int:
        return sum(r.metadata["articleType"] in CLASSES.values(garment.label) for r in garment.results)

    look = demo_recommender.look(STREET_PHOTO, k=5)
    assert look and all(in_class(g) >= 3 for g in look)  # the classifier agrees here: the class keeps most places
    ranking = demo_recommender.ranking
    demo_recommender.ranking = replace(ranking, steer_kind=False)
    try:  # kind steering off: the localiser's class alone, every place
        alone = demo_recommender.look(STREET_PHOTO, k=5)
    finally:
        demo_recommender.ranking = ranking
    assert [g.label for g in alone] == [g.label for g in look] and all(in_class(g) == 5 for g in alone)
    classifier = demo_recommender.kind_classifier
    assert classifier is not None
    dress = classifier.classes.index("dress")

    def sure_it_is_a_dress(batch: np.ndarray) -> np.ndarray:
        rows = np.zeros((len(batch), len(classifier.classes)))
        rows[:, dress] = 1.0
        return rows

    monkeypatch.setattr(classifier, "probabilities", sure_it_is_a_dress)
    assert demo_recommender.look(STREET_PHOTO, k=5) == []  # it disagrees with every garment: all left out
    assert demo_recommender.look(STREET_PHOTO, k=5, steer=False)  # an unsteered look asks no second opinion
    monkeypatch.setattr("fashionrec.recommend.MIN_AGREEMENT", 0.0)  # kept: the localiser and the classifier
    monkeypatch.setattr("fashionrec.recommend.LOCALISER_WEIGHT", 3.0)  # share the places 3 : 1
    for garment in demo_recommender.look(STREET_PHOTO, k=4):
        dresses = sum(r.metadata["articleType"] in CLASSES.values("dress") for r in garment.results)
        assert (in_class(garment), dresses) == (3, 1)


def test_a_look_keeps_the_callers_filters(demo_recommender: Recommender) -> None:
    look = demo_recommender.look(STREET_PHOTO, k=5, filters={"gender": ["Men"]})
    assert look and all(r.metadata["gender"] == "Men" for g in look for r in g.results)
    shoes = demo_recommender.look(STREET_PHOTO, k=5, filters={"articleType": ["Casual Shoes"]})
    # the caller's articleType filter replaces every garment's steering: all of them get casual shoes
    assert shoes and all(r.metadata["articleType"] == "Casual Shoes" for g in shoes for r in g.results)


def test_bad_k_is_refused_before_the_photo_is_read(demo_recommender: Recommender) -> None:
    from fashionrec.errors import FashionrecError

    with pytest.raises(FashionrecError, match="k must be between"):
        demo_recommender.look(b"not a photo", k=0)
