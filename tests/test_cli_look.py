"""``fashionrec look``: one JSON object per photo, a text block per garment, a look sheet per photo, and one clear
error line (exit 2) for user mistakes. The shipped garment localiser on the demo street photo, searched in an index
of the demo catalogue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from fashionrec.cli import main
from fashionrec.garments import load_classes
from tests.conftest import DEMO_QUERIES, STREET_PHOTO, assert_one_clear_error, run_cli


def look_json(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict]:
    assert main(["look", *args, "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]


def test_look_json_one_object_per_photo_with_garments_inside_the_photo(
    demo_index: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = [str(STREET_PHOTO), str(DEMO_QUERIES / "dress.jpg")]
    answers = look_json(capsys, *photos, "--index-dir", str(demo_index), "-k", "3")
    assert [a["query"] for a in answers] == photos and all(set(a) == {"query", "garments"} for a in answers)
    classes = load_classes()
    street = answers[0]["garments"]
    assert len(street) >= 2  # a whole outfit: several garments
    width, height = Image.open(STREET_PHOTO).size
    for garment in street:
        assert set(garment) == {"label", "box", "score", "results"}
        assert garment["label"] in classes.names
        x, y, w, h = garment["box"]
        assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= width and y + h <= height, garment["box"]
        assert 0 < garment["score"] <= 1
        # k respected; each result shaped as `recommend --json`'s; steered to the garment's class by default
        assert len(garment["results"]) == 3
        for result in garment["results"]:
            assert {"id", "score", "gender", "articleType", "productDisplayName"} <= set(result)
            assert result["articleType"] in classes.values(garment["label"])
    assert [g["score"] for g in street] == sorted((g["score"] for g in street), reverse=True)
    assert len({g["label"] for g in street}) == len(street)  # one garment per class
    dress = answers[1]["garments"]
    assert dress[0]["label"] == "dress"


def test_look_filters_and_max_garments_are_respected(demo_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (answer,) = look_json(capsys, str(STREET_PHOTO), "--index-dir", str(demo_index), "-k", "2",
                          "--filter", "gender=Women", "--max-garments", "2")
    assert 1 <= len(answer["garments"]) <= 2
    assert all(len(g["results"]) <= 2 and all(r["gender"] == "Women" for r in g["results"]) for g in answer["garments"])
    # a filter on the class file's column wins over steering: every garment is searched among Shoes only
    (answer,) = look_json(capsys, str(STREET_PHOTO), "--index-dir", str(demo_index), "--filter",
                          "masterCategory=Footwear")
    assert answer["garments"]
    assert all(r["masterCategory"] == "Footwear" for g in answer["garments"] for r in g["results"])


def test_look_without_steering_searches_the_whole_catalogue(demo_index: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    (steered,) = look_json(capsys, str(STREET_PHOTO), "--index-dir", str(demo_index), "-k", "10")
    (free,) = look_json(capsys, str(STREET_PHOTO), "--index-dir", str(demo_index), "-k", "10", "--no-steer")
    # the same garments, but a steered garment whose class has no product in the catalogue is left out
    free_boxes = [g["box"] for g in free["garments"]]
    assert [b for b in free_boxes if b in [g["box"] for g in steered["garments"]]] == [g["box"] for g in steered["garments"]]
    classes = load_classes()
    outside = [r for g in free["garments"] for r in g["results"] if r["articleType"] not in classes.values(g["label"])]
    assert outside, "without steering some garment should find products of other kinds in 10 results"


def test_look_text_output_and_a_sheet_per_photo(demo_index: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    sheet = tmp_path / "look.png"
    code = main(["look", str(STREET_PHOTO), str(DEMO_QUERIES / "dress.jpg"), "--index-dir", str(demo_index), "-k",
                 "2", "--sheet", str(sheet)])
    assert code == 0
    out = capsys.readouterr().out
    blocks = out.split(f"{DEMO_QUERIES / 'dress.jpg'}:")
    assert blocks[0].startswith(f"{STREET_PHOTO}: ") and "garments" in blocks[0].splitlines()[0]
    assert "[1] " in blocks[0] and "[2] " in blocks[0] and "[1] dress" in blocks[1]
    assert "   1. " in out and "   3. " not in out  # two products per garment
    assert not sheet.exists()  # several photos: one sheet each, numbered
    assert Image.open(tmp_path / "look-1.png").size[1] >= 2 * 160
    assert Image.open(tmp_path / "look-2.png").format == "PNG"


def test_a_bad_photo_among_good_ones_is_one_line_and_exit_2(demo_index: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["look", str(STREET_PHOTO), "nope.jpg", "--index-dir", str(demo_index), "-k", "1", "--json"])
    assert code == 2
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 1  # the good photo is still answered
    assert captured.err.strip().splitlines() == [line for line in captured.err.splitlines() if "nope.jpg" in line]
    assert captured.err.startswith("fashionrec: error: nope.jpg:")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--filter", "size=XL"], "unknown filter column"),
        (["--filter", "colour"], "bad filter"),
        (["-k", "0"], "k must be"),
        (["--max-garments", "0"], "--max-garments must be at least 1"),
    ],
)
def test_look_mistakes_are_one_line_and_exit_2(demo_index: Path, capsys: pytest.CaptureFixture[str],
                                               args: list[str], message: str) -> None:
    assert main(["look", str(STREET_PHOTO), "--index-dir", str(demo_index), *args]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fashionrec: error:") and message in lines[0], captured.err
    assert captured.out == ""


@pytest.mark.slow
def test_look_process_errors_are_one_line(demo_index: Path, tmp_path: Path) -> None:
    assert_one_clear_error(run_cli("look", str(STREET_PHOTO), "--index-dir", str(tmp_path / "missing")), "no index")
    assert_one_clear_error(run_cli("look", "nope.jpg", "--index-dir", str(demo_index)), "nope.jpg")
