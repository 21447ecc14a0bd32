"""Typed Parquet tables built from the raw files: compact integer keys, proper dtypes, validated."""

import dagster as dg

from hm_recsys import schema
from hm_recsys.defs.resources import DataResource
from hm_recsys.defs.versioning import code_version, data_version


GROUP = "tables"


def _result(df, path) -> dg.MaterializeResult:
    from hm_recsys.ingest import table_summary

    return dg.MaterializeResult(
        data_version=data_version(path),
        metadata=table_summary(df)
        | {
            "path": dg.MetadataValue.path(str(path)),
            "columns": dg.MetadataValue.json({c: str(t) for c, t in df.schema.items()}),
        },
    )


@dg.asset(deps=["raw_articles"], group_name=GROUP, code_version=code_version("1"), kinds={"polars", "parquet"})
def articles(context: dg.AssetExecutionContext, data: DataResource) -> dg.MaterializeResult:
    """articles.csv as typed Parquet with a dense ``article_idx``."""
    from hm_recsys import ingest

    df = ingest.read_articles(data.paths.raw)
    path = ingest.write_table(df, data.paths.tables / schema.ARTICLES_TABLE)
    return _result(df, path)


@dg.asset(deps=["raw_customers"], group_name=GROUP, code_version=code_version("1"), kinds={"polars", "parquet"})
def customers(context: dg.AssetExecutionContext, data: DataResource) -> dg.MaterializeResult:
    """customers.csv as typed Parquet with a dense ``customer_idx``."""
    from hm_recsys import ingest

    df = ingest.read_customers(data.paths.raw)
    path = ingest.write_table(df, data.paths.tables / schema.CUSTOMERS_TABLE)
    return _result(df, path)


@dg.asset(
    deps=["raw_transactions", articles, customers],
    group_name=GROUP,
    code_version=code_version("1"),
    kinds={"polars", "parquet"},
)
def transactions(context: dg.AssetExecutionContext, data: DataResource) -> dg.MaterializeResult:
    """transactions_train.csv keyed by article_idx / customer_idx, every id checked against the masters."""
    import polars as pl

    from hm_recsys import ingest

    arts = pl.read_parquet(data.paths.tables / schema.ARTICLES_TABLE)
    custs = pl.read_parquet(data.paths.tables / schema.CUSTOMERS_TABLE)
    df = ingest.read_transactions(data.paths.raw, arts, custs)
    path = ingest.write_table(df, data.paths.tables / schema.TRANSACTIONS_TABLE)
    return _result(df, path)


TABLE_ASSETS = [articles, customers, transactions]
