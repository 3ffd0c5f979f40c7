"""Kind steering: the kind classifier recognises the garment kinds a query shows, shares a plain query's results out
among them in proportion (each kind searched among its class's catalogue values), applies only to indexes of the
model whose input it reads, and can be switched off; its class labels for training come from the class file."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fashionrec import garments, kinds
from fashionrec.errors import FashionrecError
from fashionrec.feedback import check_examples
from fashionrec.garments import load_classes
from fashionrec.imageio import load_image
from fashionrec.kinds import (
    MAX_KINDS,
    NEIGHBOUR_WEIGHT,
    OTHER,
    KindClassifier,
    allot,
    blend,
    class_of_values,
    interleave,
    kind_classifier_for,
    vote,
)
from fashionrec.manifest import Manifest
from fashionrec.recommend import Recommender
from tests.conftest import DEMO_CATALOG, DEMO_QUERIES

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
    assert [k[0][0] for k in classifier.kinds(batch)] == ["dress", "trousers", "shoes", "top"]
    probabilities = classifier.probabilities(batch)
    assert probabilities.shape == (4, len(classifier.classes)) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    assert classifier.probabilities(batch[:0]).shape == (0, len(classifier.classes))


def test_the_kinds_are_the_likely_classes_with_their_probability(classifier: KindClassifier,
                                                                   demo_recommender: Recommender) -> None:
    batch = _batch(demo_recommender, "pants.jpg", "dress.jpg")
    probabilities = classifier.probabilities(batch)
    assert [name for name, _ in classifier.kinds(batch)[0]] == ["trousers"]  # sure: one class
    everything = KindClassifier.open(min_share=0.0)  # every class qualifies: the likeliest MAX_KINDS, in order
    for row, mix in zip(probabilities, everything.kinds(batch), strict=True):
        assert len(mix) == MAX_KINDS
        assert [share for _, share in mix] == sorted((round(float(p), 4) for p in row), reverse=True)[:MAX_KINDS]
        assert [everything.classes.index(name) for name, _ in mix] == list(np.argsort(-row)[:MAX_KINDS])
    second = float(np.sort(probabilities[1])[-2])
    two = KindClassifier.open(min_share=second)  # the two likeliest classes qualify
    assert [name for name, _ in two.kinds(batch)[1]] == ["dress", two.classes[int(np.argsort(-probabilities[1])[1])]]
    assert KindClassifier.open(min_share=0.999).kinds(batch) == [(), ()]  # nothing sure enough: no steering
    catalogue = demo_recommender.encoder.preprocess([load_image(p) for p in sorted(
        (DEMO_QUERIES.parent / "catalog" / "images").glob("*.jpg"))[:60]])
    firsts = [mix[0][0] for mix in classifier.kinds(catalogue) if mix]
    assert OTHER in firsts  # among 60 catalogue products some are no garment (watches, perfume)


def test_another_opinion_weighs_on_one_class(classifier: KindClassifier) -> None:
    n = len(classifier.classes)
    row = np.full(n, 1 / n)  # no opinion: every class as likely
    weighed = classifier.weighted(row, "skirt", 2.0)
    assert np.isclose(weighed.sum(), 1) and np.isclose(weighed[classifier.classes.index("skirt")], (1 / n + 2) / 3)
    assert classifier.mix(weighed) == (("skirt", round((1 / n + 2) / 3, 4)),)  # the rest fall under min_share
    assert np.allclose(classifier.weighted(row, "skirt", 0.0), row)
    with pytest.raises(FashionrecError, match="knows no class 'cape'"):
        classifier.weighted(row, "cape", 1.0)


def test_at_most_max_kinds_share_the_places(classifier: KindClassifier, demo_recommender: Recommender) -> None:
    batch = _batch(demo_recommender, "dress.jpg", "shoes.jpg")
    for most in (1, 2):
        assert all(len(mix) == most for mix in KindClassifier.open(min_share=0.0, max_kinds=most).kinds(batch))
    for bad in ({"min_share": 1.5}, {"max_kinds": 0}):
        with pytest.raises(FashionrecError, match="min_share must be within 0..1 and max_kinds at least 1"):
            KindClassifier.open(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("shares", "k", "places"), [
    ([0.76], 5, [5]), ([0.6, 0.3], 5, [3, 2]), ([0.5, 0.5], 5, [3, 2]), ([0.45, 0.35, 0.2], 5, [2, 2, 1]),
    ([0.9, 0.1], 1, [1, 0]), ([0.7, 0.2, 0.1], 10, [7, 2, 1]), ([0.3, 0.2], 0, [0, 0]), ([], 5, []),
])
def test_places_are_shared_in_proportion(shares: list[float], k: int, places: list[int]) -> None:
    assert allot(shares, k) == places


def test_interleave_takes_each_lists_places_then_fills() -> None:
    assert interleave([(3, "abcde"), (2, "vwxyz")], 5, key=str) == list("abcvw")
    assert interleave([(3, "abcde"), (2, "axbyz")], 5, key=str) == list("abcxy")  # taken already: skipped
    assert interleave([(3, "ab"), (2, "vwxyz")], 5, key=str) == list("abvwx")  # a short list's place to the rest
    assert interleave([(4, "abcde"), (1, "")], 5, key=str) == list("abcde")
    assert interleave([(1, "abc"), (1, "xyz")], 1, key=str) == list("a")
    assert interleave([(2, ""), (3, "")], 5, key=str) == []


def test_a_hesitant_query_gets_each_kind_in_proportion(demo_recommender: Recommender) -> None:
    vector = demo_recommender.embed([DEMO_QUERIES / "dress.jpg"])[0]
    none = check_examples((), ())
    mixed = demo_recommender.steer_kinds(vector, (("dress", 0.6), ("trousers", 0.4)), 5, {}, none)
    kinds = ["dress" if r.metadata["articleType"] in CLASSES.values("dress") else
             "trousers" if r.metadata["articleType"] in CLASSES.values("trousers") else "?" for r in mixed]
    assert sorted(kinds) == ["dress"] * 3 + ["trousers"] * 2 and "?" not in kinds
    assert [r.score for r in mixed] == sorted((r.score for r in mixed), reverse=True)  # ordered by score
    plain = demo_recommender.steer(vector, 5, {}, none)
    hedged = demo_recommender.steer_kinds(vector, (("dress", 0.6), (OTHER, 0.4)), 5, {}, none)
    dresses = demo_recommender.steer(vector, 5, demo_recommender.kind_filters({}, ("dress",)), none)
    taken = {r.id for r in dresses[:3]}
    assert {r.id for r in hedged} == taken | {r.id for r in [p for p in plain if p.id not in taken][:2]}
    liked = check_examples([dresses[0].id], ())  # liked products say more than the photo's kind: no steering
    assert [r.id for r in demo_recommender.steer_kinds(vector, (("trousers", 1.0),), 5, {}, liked)] == [
        r.id for r in demo_recommender.steer(vector, 5, {}, liked)]


def test_a_tampered_classifier_turns_steering_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (kinds.KIND_FILE, kinds.KIND_CARD):
        shutil.copy(garments.weights_folder() / name, tmp_path / name)
    card = json.loads((tmp_path / kinds.KIND_CARD).read_text())
    (tmp_path / kinds.KIND_CARD).write_text(json.dumps({**card, "sha256": "0" * 64}))
    monkeypatch.setattr("fashionrec.garments.weights_folder", lambda: tmp_path)
    with pytest.raises(FashionrecError, match="does not match its recorded checksum"):
        KindClassifier.open()
    assert kind_classifier_for(FASHION) is None


def test_only_the_model_whose_input_it_reads_is_steered() -> None:
    assert kind_classifier_for(FASHION) is not None
    assert kind_classifier_for(FASHION).neighbour_weight == 0.0  # type: ignore[union-attr]  # no worn garments learnt
    assert kind_classifier_for(FASHION, worn=True).neighbour_weight == NEIGHBOUR_WEIGHT  # type: ignore[union-attr]
    assert kind_classifier_for(replace(FASHION, name="efficientnet-lite0", dim=1280)) is None
    assert kind_classifier_for(replace(FASHION, weights="/my/fashion.pt")) is None
    assert kind_classifier_for(replace(FASHION, image_size=96)) is None


def test_catalogue_values_name_the_most_specific_class() -> None:
    assert class_of_values({"Skirts"}, CLASSES) == "skirt"
    assert class_of_values({"Leggings"}, CLASSES) == "legwear"  # also a kind of trousers, but legwear is narrower
    assert class_of_values({"Tshirts", "Shirts", "Sweatshirts", "Tops", "Sweaters"}, CLASSES) == "top"
    assert class_of_values({"Deodorant"}, CLASSES) == OTHER


def test_the_nearest_products_vote_for_their_classes() -> None:
    names = ["top", "dress", OTHER]
    assert vote(["dress", "dress", "top", "Deodorant-ish"], names).tolist() == [0.25, 0.5, 0.25]  # unknown: other
    assert vote(["dress", "hat"], ["top", "dress"]).tolist() == [0.0, 1.0]  # no other to count it for: not counted
    assert vote([], names).tolist() == [0.0, 0.0, 0.0]
    row = np.array([0.9, 0.1, 0.0])
    assert np.allclose(blend(row, np.array([0.0, 1.0, 0.0]), 0.1), [0.81, 0.19, 0.0])
    assert np.allclose(blend(row, np.zeros(3), 0.5), row)  # nobody voted: the classifier alone


def test_the_vote_blends_into_the_mix_of_kinds(classifier: KindClassifier) -> None:
    row = np.zeros(len(classifier.classes))
    row[classifier.classes.index("top")] = 0.95
    row[classifier.classes.index("knitwear")] = 0.05  # the photo alone: a top, knitwear under min_share
    alone = KindClassifier.open(neighbour_weight=0.0)
    assert [name for name, _ in alone.mixes(row[None, :], [["knitwear"] * 10])[0]] == ["top"]
    voting = KindClassifier.open(neighbour_weight=0.2, neighbours=10)
    mix = voting.mixes(row[None, :], [["knitwear"] * 6 + ["top"] * 4])[0]
    assert [name for name, _ in mix] == ["top", "knitwear"]  # the catalogue's sweaters win knitwear a place
    assert mix[1][1] == pytest.approx(0.8 * 0.05 + 0.2 * 0.6, abs=1e-4)
    assert voting.mixes(row[None, :])[0] == alone.mixes(row[None, :])[0]  # no votes given: the classifier alone
    for bad in ({"neighbour_weight": 1.5}, {"neighbours": -1}):
        with pytest.raises(FashionrecError, match="neighbour_weight must be within 0..1 and neighbours at least 0"):
            KindClassifier.open(**bad)  # type: ignore[arg-type]
    assert KindClassifier.open(neighbours=0).neighbour_weight == 0.0  # nobody votes: nothing blended


def test_a_query_is_voted_on_by_its_nearest_products_but_never_by_an_excluded_one(
        demo_recommender: Recommender) -> None:
    rec = demo_recommender
    before = rec.kind_classifier
    try:
        rec.kind_classifier = KindClassifier.open(neighbour_weight=1.0, neighbours=1)  # the nearest product decides
        cases = []
        for item in rec.db.iter_items():  # products whose nearest other product is of another class
            batch = rec.encoder.preprocess([load_image(DEMO_CATALOG / "images" / f"{item.id}.jpg")])
            vectors, kinds = rec.encode_queries(batch)
            own = class_of_values({item.metadata["articleType"]}, CLASSES)
            assert rec.recommend_vectors(vectors, 1, {}, consensus=0.0)[0][0].id == item.id  # its own photo first
            assert [name for name, _ in kinds[0]] == [own]
            second = rec.recommend_vectors(vectors, 1, {}, exclude={item.id}, consensus=0.0)[0][0]
            if class_of_values({second.metadata["articleType"]}, CLASSES) != own:
                cases.append((batch, item.id, class_of_values({second.metadata["articleType"]}, CLASSES)))
        assert cases
        for batch, excluded, other in cases:
            assert [name for name, _ in rec.encode_queries(batch, exclude={excluded})[1][0]] == [other]
        rec.kind_classifier = KindClassifier.open(neighbour_weight=0.0)
        assert rec.encode_queries(batch)[1] == rec.kind_classifier.kinds(batch)  # no vote: the classifier alone
    finally:
        rec.kind_classifier = before


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
