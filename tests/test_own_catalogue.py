"""A retailer's own catalogue, end to end through the command line (issue 26): a shop whose CSV is
``sku,category,colour,title`` is indexed with its label, trained on it, evaluated by it, and recommended from with
the neighbours' vote and ``--differ``; an index without a usable label is one clear error, never a table of zeros.
(The same path on real shop photos, with the measured figures: benchmarks/shop_labels.py.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fashionrec.cli import main
from tests.conftest import SHOP_INDEX_ARGS, assert_one_clear_error, run_cli, write_shop


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def categories(shop: Path) -> dict[str, str]:
    lines = (shop / "products.csv").read_text(encoding="utf-8").splitlines()[1:]
    return {line.split(",")[0]: line.split(",")[1] for line in lines}


def recommend_loo(capsys: pytest.CaptureFixture[str], shop: Path, index_dir: Path) -> float:
    """Leave-one-out P@5 by category computed from ``recommend --json -k 6`` on every product's own image."""
    kinds = categories(shop)
    skus = sorted(kinds)
    code, out = cli(capsys, "recommend", *(str(shop / "photos" / f"{s}.jpg") for s in skus), "--index-dir",
                    str(index_dir), "-k", "6", "--json")
    assert code == 0
    hits = 0
    for sku, line in zip(skus, out.splitlines(), strict=True):
        top = [r for r in json.loads(line)["results"] if r["id"] != sku][:5]
        hits += sum(r["category"] == kinds[sku] for r in top)
    return hits / (5 * len(skus))


def test_a_shop_indexes_trains_evaluates_and_recommends_by_its_own_label(
    shop_index: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop, built = shop_index
    index_dir = tmp_path / "index"
    shutil.copytree(built, index_dir)
    code, out = cli(capsys, "info", "--index-dir", str(index_dir), "--json")
    assert code == 0 and json.loads(out)["column_roles"] == {"label": "category", "colour": "colour",
                                                             "name": "title", "aux": []}

    code, out = cli(capsys, "train", "--index-dir", str(index_dir), "--label", "category", "--epochs", "3",
                    "--hidden", "64", "--min-steps", "60", "--augment-views", "0", "--json")
    trained = json.loads(out)
    assert code == 0 and trained["label"] == "category" and trained["aux_labels"] == ["colour"]
    assert trained["classes"] == len(set(categories(shop).values()))

    code, out = cli(capsys, "evaluate", "--index-dir", str(index_dir), "--leave-one-out", "--json")
    loo = json.loads(out)
    assert code == 0 and loo["label"] == "category" and loo["protocol"] == "leave-one-out"
    assert 0.3 < loo["P@5"] == loo["runs"]["image-only"]["metrics"]["P@5"]
    assert "agree_colour@5" in loo["runs"]["image-only"]["metrics"]  # the recorded colour column
    assert abs(loo["P@5"] - recommend_loo(capsys, shop, index_dir)) <= 0.05

    code, out = cli(capsys, "evaluate", "--index-dir", str(index_dir), "--json")  # the products held out of training
    assert code == 0 and json.loads(out)["label"] == "category" and json.loads(out)["protocol"] == "holdout"

    photo = str(shop / "photos" / "SK-1548.jpg")
    code, out = cli(capsys, "recommend", photo, "--index-dir", str(index_dir), "--consensus", "0.5", "--json")
    voted = json.loads(out)["results"]
    assert code == 0 and len(voted) == 5 and all(r["category"] for r in voted)
    liked = voted[0]["id"]
    code, out = cli(capsys, "recommend", photo, "--index-dir", str(index_dir), "--like", liked, "--differ",
                    "category", "--json")
    other = json.loads(out)["results"]
    assert code == 0 and other and all(r["category"] != categories(shop)[liked] for r in other)


def test_the_label_changes_without_re_embedding(shop_index: tuple[Path, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    shop, built = shop_index
    index_dir = tmp_path / "index"
    shutil.copytree(built, index_dir)
    args = [a if a != "products.csv" else str(shop / a) for a in SHOP_INDEX_ARGS]
    code, out = cli(capsys, "index", str(shop), *args, "--index-dir", str(index_dir), "--label", "colour", "--json")
    assert code == 0 and json.loads(out)["embedded"] == 0
    code, out = cli(capsys, "evaluate", "--index-dir", str(index_dir), "--leave-one-out", "--json")
    assert code == 0 and json.loads(out)["label"] == "colour"  # the colour is still recorded as the colour too
    code, out = cli(capsys, "train", "--index-dir", str(index_dir), "--label", "category", "--epochs", "1",
                    "--hidden", "32", "--min-steps", "0", "--augment-views", "0", "--json")
    assert code == 0
    code, out = cli(capsys, "info", "--index-dir", str(index_dir), "--json")
    assert json.loads(out)["column_roles"]["label"] == "category"  # training a label records it


def test_a_wrong_or_missing_label_is_one_clear_error(shop_index: tuple[Path, Path], tmp_path: Path) -> None:
    shop, _ = shop_index
    args = [a if a != "products.csv" else str(shop / a) for a in SHOP_INDEX_ARGS]
    proc = run_cli("index", str(shop), *args, "--index-dir", str(tmp_path / "bad"), "--label", "kind")
    assert_one_clear_error(proc, "label 'kind' is not a column of the catalogue; columns: category, colour, title")
    assert not (tmp_path / "bad" / "catalog.sqlite").exists()  # refused before anything was written

    unlabelled = tmp_path / "unlabelled"
    write_shop(tmp_path / "titles", 20)
    code = main(["index", str(tmp_path / "titles"), *[a if a != "products.csv" else str(tmp_path / "titles" / a)
                                                      for a in SHOP_INDEX_ARGS],
                 "--columns", "title", "--index-dir", str(unlabelled), "--json"])
    assert code == 0
    for command in (("evaluate", "--leave-one-out"), ("train",), ("recommend", str(shop / "photos" / "SK-1548.jpg"),
                                                                  "--consensus", "0.5")):
        proc = run_cli(*command, "--index-dir", str(unlabelled))
        assert_one_clear_error(proc, "label")


@pytest.mark.slow
def test_a_shop_of_real_photos_is_measured_by_its_category(shared_data: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Real photos (not Myntra's) as a shop's catalogue, queried with photos of other garments of the same kinds:
    evaluation names the label and measures well above chance (4 kinds: 0.25), before and after training."""
    photos = shared_data / "clothing-photos"
    kinds = ("dress", "pants", "shoes", "shorts")
    shop = tmp_path / "shop"
    (shop / "photos").mkdir(parents=True)
    queries = tmp_path / "queries"
    lines = ["sku,category,title"]
    for kind in kinds:
        for n, photo in enumerate(sorted((photos / "train" / kind).glob("*.jpg"))[:30]):
            shutil.copyfile(photo, shop / "photos" / f"{kind}-{n}.jpg")
            lines.append(f"{kind}-{n},{kind},{kind} no. {n}")
        (queries / kind).mkdir(parents=True)
        for photo in sorted((photos / "test" / kind).glob("*.jpg"))[:8]:
            shutil.copyfile(photo, queries / kind / photo.name)
    (shop / "products.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({kind: [kind] for kind in kinds}))
    index_dir = tmp_path / "index"
    args = [a if a != "products.csv" else str(shop / a) for a in SHOP_INDEX_ARGS]
    assert main(["index", str(shop), *args, "--index-dir", str(index_dir), "--label", "category", "--json"]) == 0
    evaluate = ["evaluate", "--index-dir", str(index_dir), "--photos", str(queries), "--mapping", str(mapping), "--json"]
    capsys.readouterr()
    code, out = cli(capsys, *evaluate)
    as_is = json.loads(out)
    assert code == 0 and as_is["label"] == "category" and as_is["runs"]["image-only"]["queries"] == 32
    assert as_is["P@5"] > 0.5
    code, _ = cli(capsys, "train", "--index-dir", str(index_dir), "--label", "category", "--augment-views", "0",
                  "--json")
    assert code == 0
    code, out = cli(capsys, *evaluate)
    assert code == 0 and json.loads(out)["head"] and json.loads(out)["P@5"] > 0.5
