"""The raw Kaggle files as observable source assets: their data version is a hash of their content,
so dropping new files into the raw folder marks exactly the dependent tables stale."""

import dagster as dg

from hm_recsys import schema
from hm_recsys.defs.resources import DataResource


RAW_FILES = {
    "raw_articles": schema.ARTICLES_CSV,
    "raw_customers": schema.CUSTOMERS_CSV,
    "raw_transactions": schema.TRANSACTIONS_CSV,
}


def _file_source(name: str, filename: str) -> dg.SourceAsset:
    @dg.observable_source_asset(name=name, group_name="raw", description=f"`raw/{filename}` (Kaggle schema).")
    def _observe(data: DataResource) -> dg.DataVersion:
        from hm_recsys.ingest import raw_file_version

        path = data.paths.raw / filename
        if not path.exists():
            raise FileNotFoundError(f"{path}: raw file missing (run `hm-recsys generate` or copy the Kaggle files)")
        return dg.DataVersion(raw_file_version(path))

    return _observe


@dg.observable_source_asset(name="raw_images", group_name="raw", description="`raw/images/0xx/*.jpg`, one per article.")
def raw_images(data: DataResource) -> dg.DataVersion:
    from hm_recsys.ingest import raw_dir_version

    return dg.DataVersion(raw_dir_version(data.paths.images) if data.paths.images.exists() else "no-images")


def build() -> list:
    return [_file_source(name, filename) for name, filename in RAW_FILES.items()] + [raw_images]
