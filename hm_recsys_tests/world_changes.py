"""Every kind of raw change at once, as an upstream correction brings it: the shared end-to-end world is a base
world with these applied (conftest.backtested), and test_ui.py makes them under `dagster dev` and must end equal to
it. One run of each change costs as much as all of them together."""

from __future__ import annotations

import shutil

from hm_recsys.paths import DataPaths


def apply_every_change(paths: DataPaths, source: DataPaths) -> None:
    """A price in an old week, an article with a photo and a customer inserted as first rows (every later dense index
    shifts under the tables built before; the new photo joins photos already embedded), a transaction removed, and a
    first photo for an article that had none (taken from ``source``)."""
    change_one_price(paths)
    insert_article(paths)
    insert_customer(paths)
    remove_one_row(paths)
    add_image(paths, source)


def change_one_price(paths: DataPaths) -> None:
    tx = paths.raw / "transactions_train.csv"
    lines = tx.read_text().splitlines(keepends=True)
    row = len(lines) * 3 // 4  # an old week: every target week's history changes
    date, customer, article, price, channel = lines[row].rstrip("\n").split(",")
    lines[row] = f"{date},{customer},{article},{float(price) * 2:.6f},{channel}\n"
    tx.write_text("".join(lines))


NEW_ARTICLE = "0999999001"


def insert_article(paths: DataPaths) -> None:
    """A new, valid article as the first data row (every later article_idx shifts by one), with a photo: a
    copy of an existing one, so it joins the photos already embedded."""
    arts = paths.raw / "articles.csv"
    header, first, *rest = arts.read_text().splitlines(keepends=True)
    fields = first.split(",")
    fields[0] = NEW_ARTICLE
    arts.write_text(header + ",".join(fields) + first + "".join(rest))
    photo = sorted(paths.images.rglob("*.jpg"))[0]
    dest = paths.images / NEW_ARTICLE[:3] / f"{NEW_ARTICLE}.jpg"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(photo, dest)


def insert_customer(paths: DataPaths) -> None:
    """A new, valid customer as the first data row: every later customer_idx shifts by one."""
    custs = paths.raw / "customers.csv"
    header, first, *rest = custs.read_text().splitlines(keepends=True)
    fields = first.split(",")
    fields[0] = "f" * 64
    custs.write_text(header + ",".join(fields) + first + "".join(rest))


def remove_one_row(paths: DataPaths) -> None:
    """A transaction deleted from an old week (a correction upstream)."""
    tx = paths.raw / "transactions_train.csv"
    lines = tx.read_text().splitlines(keepends=True)
    del lines[len(lines) // 3]
    tx.write_text("".join(lines))


def add_image(paths: DataPaths, source: DataPaths) -> None:
    """The first photo of an article that had none: it leaves the has_image=0 path."""
    have = {p.name for p in paths.images.rglob("*.jpg")}
    image = next(p for p in sorted(source.images.rglob("*.jpg")) if p.name not in have)
    dest = paths.images / image.relative_to(source.images)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(image, dest)
