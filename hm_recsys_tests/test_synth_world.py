"""The tiny synthetic world: exact Kaggle schema, images, determinism and the planted structure."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from hm_recsys import schema
from hm_recsys.synth import SCALES, generate_world
from hm_recsys.synth.catalog import build_catalog
from hm_recsys.synth.images import Renderer, silhouette
from hm_recsys.synth.scales import END_DATE, get_scale

HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return generate_world(tmp_path_factory.mktemp("world"), "tiny", seed=0)


@pytest.fixture(scope="module")
def tables(raw):
    return (
        pl.read_csv(raw / schema.ARTICLES_CSV, schema=schema.ARTICLE_COLUMNS),
        pl.read_csv(raw / schema.CUSTOMERS_CSV, schema=schema.CUSTOMER_COLUMNS),
        pl.read_csv(raw / schema.TRANSACTIONS_CSV, schema=schema.TRANSACTION_COLUMNS),
    )


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_layout_and_headers(raw):
    assert raw.name == "raw"
    for name, columns in ((schema.ARTICLES_CSV, schema.ARTICLE_COLUMNS),
                          (schema.CUSTOMERS_CSV, schema.CUSTOMER_COLUMNS),
                          (schema.TRANSACTIONS_CSV, schema.TRANSACTION_COLUMNS)):
        header = (raw / name).open().readline().strip().split(",")
        assert header == list(columns), name
    assert (raw / schema.IMAGES_DIR).is_dir()
    assert not [p for p in raw.parent.iterdir() if p.name.startswith(".")], "temporary folder left behind"


def test_articles_ids_and_codes(tables):
    art, _, _ = tables
    assert art.height == SCALES["tiny"].n_articles
    ids = art["article_id"]
    assert ids.is_unique().all() and ids.str.contains(r"^0\d{9}$").all()
    assert (ids.cast(pl.Int64) // 1000 == art["product_code"]).all()
    assert ids.to_list() == sorted(ids.to_list())
    # every code maps to one name; names may be shared by several codes (like the real file)
    pairs = [("product_type_no", "product_type_name"), ("graphical_appearance_no", "graphical_appearance_name"),
             ("colour_group_code", "colour_group_name"), ("perceived_colour_value_id", "perceived_colour_value_name"),
             ("perceived_colour_master_id", "perceived_colour_master_name"), ("department_no", "department_name"),
             ("index_code", "index_name"), ("index_group_no", "index_group_name"), ("section_no", "section_name"),
             ("garment_group_no", "garment_group_name")]
    for code, name in pairs:
        assert art.group_by(code).agg(pl.col(name).n_unique().alias("k"))["k"].max() == 1, code
    assert art.select("department_no").n_unique() > art.select("department_name").n_unique()
    # perceived colour follows the colour group
    assert art.group_by("colour_group_code").agg(pl.col("perceived_colour_master_id").n_unique())[:, 1].max() == 1
    known = {("index_group_no", "index_group_name"): {1: "Ladieswear", 2: "Baby/Children", 3: "Menswear",
                                                       4: "Sport", 26: "Divided"},
             ("product_type_no", "product_type_name"): {253: "Vest top", 272: "Trousers", 255: "T-shirt"},
             ("colour_group_code", "colour_group_name"): {9: "Black", 10: "White", 73: "Dark Blue"},
             ("graphical_appearance_no", "graphical_appearance_name"): {1010016: "Solid"},
             ("garment_group_no", "garment_group_name"): {1002: "Jersey Basic", 1009: "Trousers"}}
    for (code, name), expected in known.items():
        seen = dict(art.select(code, name).unique().iter_rows())
        for k, v in expected.items():
            if k in seen:
                assert seen[k] == v, (code, k)
    assert set(art["index_group_no"]) == {1, 2, 3, 4, 26}
    assert set(art["index_code"]) <= set("ABCDFGHIJS")
    assert art["product_code"].n_unique() < art.height  # colour variants share a product


def test_detail_desc_and_image_gaps_like_the_real_catalogue():
    cat = build_catalog(SCALES["demo"], np.random.default_rng(3))
    empty = cat.frame["detail_desc"].null_count() / cat.n
    assert 0.001 < empty < 0.01
    assert 0.001 < 1 - cat.has_image.mean() < 0.01


def test_customers_columns(raw, tables):
    _, cus, _ = tables
    assert cus.height == SCALES["tiny"].n_customers
    assert cus["customer_id"].is_unique().all()
    assert all(HEX64.match(x) for x in cus["customer_id"])
    assert all(HEX64.match(x) for x in cus["postal_code"])
    assert cus["postal_code"].n_unique() < cus.height / 2
    assert set(cus["FN"].drop_nulls()) == {1.0} and set(cus["Active"].drop_nulls()) == {1.0}
    assert 0.55 < cus["FN"].null_count() / cus.height < 0.75
    assert set(cus["club_member_status"].drop_nulls()) <= {"ACTIVE", "PRE-CREATE", "LEFT CLUB"}
    assert cus["club_member_status"].null_count() > 0
    assert set(cus["fashion_news_frequency"].drop_nulls()) <= {"NONE", "Regularly", "Monthly", "None"}
    assert "None" in set(cus["fashion_news_frequency"])
    assert cus["age"].null_count() > 0 and 16 <= cus["age"].min() and cus["age"].max() <= 99
    # raw text: "1.0" or empty, ages written like "49.0"
    line = next(ln for ln in (raw / schema.CUSTOMERS_CSV).open().readlines()[1:] if ",1.0,1.0," in ln)
    assert re.search(r",\d{2}\.0,[0-9a-f]{64}$", line.strip())


def test_transactions_columns(raw, tables):
    art, cus, tx = tables
    sc = SCALES["tiny"]
    assert tx["t_dat"].min() >= sc.start and tx["t_dat"].max() == END_DATE
    assert tx["t_dat"].is_sorted()
    assert set(tx["sales_channel_id"].unique()) == {1, 2}
    assert tx["price"].min() > 0 and tx["price"].max() <= 0.5916
    assert tx["customer_id"].is_in(cus["customer_id"].implode()).all()
    assert tx["article_id"].is_in(art["article_id"].implode()).all()
    first = (raw / schema.TRANSACTIONS_CSV).open().readlines()[1].split(",")
    assert re.match(r"^\d{4}-\d{2}-\d{2}$", first[0]) and re.match(r"^0\d{9}$", first[2])
    assert len(first[3]) > 8  # full float precision, like the real file


def test_structure_duplicates_channels_repurchases(tables):
    _, _, tx = tables
    dup_share = 1 - tx.unique().height / tx.height
    assert 0.04 < dup_share < 0.2
    assert 0.6 < (tx["sales_channel_id"] == 2).mean() < 0.8
    days_per_pair = tx.group_by("customer_id", "article_id").agg(pl.col("t_dat").n_unique().alias("d"))
    assert (days_per_pair["d"] > 1).sum() > 20  # the same article bought again on another day
    with_product = tx.with_columns((pl.col("article_id").cast(pl.Int64) // 1000).alias("product"))
    colours = with_product.group_by("customer_id", "product").agg(pl.col("article_id").n_unique().alias("k"))
    assert (colours["k"] > 1).sum() > 20  # several colours of one product
    assert 0.02 < tx.select("customer_id").n_unique() / SCALES["tiny"].n_customers <= 1.0


def test_images_present_sized_and_named(raw, tables):
    art, _, _ = tables
    files = sorted((raw / schema.IMAGES_DIR).rglob("*.jpg"))
    ids = set(art["article_id"])
    assert 0.95 * art.height <= len(files) <= art.height
    for f in files[:50]:
        assert f.parent.name == f.stem[:3] and f.stem in ids
    with Image.open(files[0]) as img:
        assert img.size == (SCALES["tiny"].image_size,) * 2 and img.mode == "RGB"


def test_images_follow_colour_and_type(raw, tables):
    art, _, _ = tables
    images = raw / schema.IMAGES_DIR

    def garment_brightness(colour: str) -> float:
        """Dark end of the picture (the garment, not the light background), averaged over articles."""
        rows = art.filter((pl.col("colour_group_name") == colour) & (pl.col("graphical_appearance_name") == "Solid"))
        vals = [np.percentile(np.asarray(Image.open(images / a[:3] / f"{a}.jpg")), 10)
                for a in rows["article_id"] if (images / a[:3] / f"{a}.jpg").exists()]
        return float(np.mean(vals))

    assert garment_brightness("Black") + 80 < garment_brightness("White")
    r = Renderer(64, np.random.default_rng(0))
    red = np.array([200, 30, 40], dtype=np.uint8)
    tee, trousers = r.render("tshirt", "solid", red, 1), r.render("trousers", "solid", red, 1)
    assert np.abs(tee.astype(int) - trousers.astype(int)).mean() > 10
    blue = r.render("tshirt", "solid", np.array([25, 35, 80], dtype=np.uint8), 1)
    assert abs(int(tee[..., 0].mean()) - int(blue[..., 0].mean())) > 20
    inside = silhouette("tshirt", 64)[0]
    striped = r.render("tshirt", "stripe", red, 1)
    assert striped.mean(axis=2)[inside].std() > tee.mean(axis=2)[inside].std() + 20


def test_same_seed_same_bytes_other_seed_differs(raw, tmp_path):
    again = generate_world(tmp_path / "again", "tiny", seed=0)
    assert _digest(again) == _digest(raw)
    other = generate_world(tmp_path / "other", "tiny", seed=1, images=False)
    assert not (other / schema.IMAGES_DIR).exists()
    assert (other / schema.TRANSACTIONS_CSV).read_bytes() != (raw / schema.TRANSACTIONS_CSV).read_bytes()


def test_regenerating_replaces_only_raw(tmp_path):
    keep = tmp_path / "tables" / "keep.txt"
    keep.parent.mkdir()
    keep.write_text("x")
    generate_world(tmp_path, "tiny", seed=2, images=False)
    raw = generate_world(tmp_path, "tiny", seed=3, images=False)
    assert keep.read_text() == "x"
    assert sorted(p.name for p in raw.iterdir()) == sorted(
        [schema.ARTICLES_CSV, schema.CUSTOMERS_CSV, schema.TRANSACTIONS_CSV])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw", "tables"]


def test_scales_describe_sizes():
    assert set(SCALES) == {"tiny", "demo", "full"}
    full = SCALES["full"]
    assert (full.n_customers, full.n_articles, full.n_days, full.images) == (1_371_980, 105_542, 734, False)
    assert SCALES["demo"].n_days == 734 and SCALES["demo"].images
    assert SCALES["tiny"].end == dt.date(2020, 9, 22) and SCALES["tiny"].n_days < 365
    with pytest.raises(ValueError, match="unknown scale"):
        get_scale("huge")
