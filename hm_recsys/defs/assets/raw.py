"""The raw Kaggle files as observable source assets: their data version is a hash of their content,
so dropping new files into the raw folder marks exactly the dependent tables unsynced. The
``raw_files`` sensor observes them every few seconds; "Observe" in the UI does the same by hand."""

import dagster as dg

from hm_recsys import schema
from hm_recsys.defs.jobs import CPU_TAGS
from hm_recsys.defs.resources import DataResource

RAW_FILES = {
    "raw_articles": schema.ARTICLES_CSV,
    "raw_customers": schema.CUSTOMERS_CSV,
    "raw_transactions": schema.TRANSACTIONS_CSV,
}
RAW_IMAGES = "raw_images"
NO_IMAGES = "no-images"


def raw_version(data: DataResource, asset: str) -> str:
    """The content version of one raw input (the images folder counts as one input)."""
    from hm_recsys.ingest import RawDataError, raw_dir_version, raw_file_version

    if asset == RAW_IMAGES:
        return raw_dir_version(data.paths.images) if data.paths.images.is_dir() else NO_IMAGES
    path = data.paths.raw / RAW_FILES[asset]
    if not path.exists():
        raise RawDataError(path, "raw file missing (run `hm-recsys generate` or copy the Kaggle files here)")
    return raw_file_version(path)


def _file_source(name: str, filename: str) -> dg.SourceAsset:
    @dg.observable_source_asset(name=name, group_name="raw", description=f"raw/{filename} (Kaggle schema), versioned by content hash.",
                                op_tags=CPU_TAGS)
    def _observe(data: DataResource) -> dg.DataVersion:
        return dg.DataVersion(raw_version(data, name))

    return _observe


@dg.observable_source_asset(name=RAW_IMAGES, group_name="raw", op_tags=CPU_TAGS,
                            description="raw/images/0xx/*.jpg, one per article, versioned by content hash.")
def raw_images(data: DataResource) -> dg.DataVersion:
    return dg.DataVersion(raw_version(data, RAW_IMAGES))


def build() -> list:
    return [_file_source(name, filename) for name, filename in RAW_FILES.items()] + [raw_images]


RAW_ASSETS = [*RAW_FILES, RAW_IMAGES]
