"""Typed Parquet tables built from the raw files: compact integer keys, proper dtypes, validated.

``article_idx`` / ``customer_idx`` are row numbers of the master files, so an inserted article shifts
every later key: ``transactions`` and everything keyed by them depend on the masters' data versions
and are rebuilt whenever a master's content changes.
"""

import dagster as dg

from hm_recsys import schema
from hm_recsys.defs import checks
from hm_recsys.defs.jobs import CPU_TAGS
from hm_recsys.defs.resources import DataResource
from hm_recsys.defs.versioning import code_version, data_version

GROUP = "tables"


def _keys_check(df, key: str, natural: str | None, tables_dir) -> dg.AssetCheckResult:
    import polars as pl

    problems = []
    if natural is not None:
        if not df[key].equals(pl.Series(key, range(df.height), dtype=df[key].dtype)):
            problems.append(f"{key} is not 0..{df.height - 1} in row order")
        dup = df.filter(pl.col(natural).is_duplicated())
        if dup.height:
            problems.append(f"{natural} {dup[natural][0]!r} appears {dup.height} times")
    else:  # transactions: every key must join to its master table
        for col, table in (("article_idx", schema.ARTICLES_TABLE), ("customer_idx", schema.CUSTOMERS_TABLE)):
            n = pl.scan_parquet(tables_dir / table).select(pl.len()).collect().item()
            bad = df.filter(pl.col(col).is_null() | (pl.col(col) < 0) | (pl.col(col) >= n))
            if bad.height:
                problems.append(f"{bad.height} rows have a {col} outside its master table (0..{n - 1})")
    return dg.AssetCheckResult(check_name=checks.KEYS, passed=not problems,
                               metadata={"problems": "; ".join(problems) or "none", "rows": df.height})


def _result(df, path, key: str, natural: str | None, data: DataResource, extra: dict | None = None) -> dg.MaterializeResult:
    from hm_recsys.ingest import table_summary

    return dg.MaterializeResult(
        data_version=data_version(path),
        metadata=table_summary(df) | (extra or {}) | {
            "path": dg.MetadataValue.path(str(path)),
            "columns": dg.MetadataValue.json({c: str(t) for c, t in df.schema.items()}),
        },
        check_results=[_keys_check(df, key, natural, data.paths.tables)],
    )


def _spec(asset: str) -> list[dg.AssetCheckSpec]:
    return [checks.spec(asset, checks.KEYS, "Dense keys 0..n-1 in row order, unique natural ids; transactions join to both masters.")]


def build(automation: dg.AutomationCondition) -> list[dg.AssetsDefinition]:
    common = dict(group_name=GROUP, code_version=code_version("2"), kinds={"polars", "parquet"}, automation_condition=automation,
                  op_tags=CPU_TAGS)

    @dg.asset(deps=["raw_articles"], check_specs=_spec("articles"), **common)
    def articles(context: dg.AssetExecutionContext, data: DataResource) -> dg.MaterializeResult:
        """articles.csv as typed Parquet with a dense article_idx (its row number)."""
        from hm_recsys import ingest

        df = ingest.read_articles(data.paths.raw)
        return _result(df, ingest.write_table(df, data.paths.tables / schema.ARTICLES_TABLE), "article_idx", "article_id", data)

    @dg.asset(deps=["raw_customers"], check_specs=_spec("customers"), **common)
    def customers(context: dg.AssetExecutionContext, data: DataResource) -> dg.MaterializeResult:
        """customers.csv as typed Parquet with a dense customer_idx (its row number)."""
        from hm_recsys import ingest

        df = ingest.read_customers(data.paths.raw)
        return _result(df, ingest.write_table(df, data.paths.tables / schema.CUSTOMERS_TABLE), "customer_idx", "customer_id", data)

    @dg.asset(deps=["raw_transactions", articles, customers], check_specs=_spec("transactions"), **common)
    def transactions(context: dg.AssetExecutionContext, data: DataResource) -> dg.MaterializeResult:
        """transactions_train.csv keyed by article_idx / customer_idx, every id checked against the masters."""
        import polars as pl

        from hm_recsys import ingest

        arts = pl.read_parquet(data.paths.tables / schema.ARTICLES_TABLE)
        custs = pl.read_parquet(data.paths.tables / schema.CUSTOMERS_TABLE)
        df = ingest.read_transactions(data.paths.raw, arts, custs)
        return _result(df, ingest.write_table(df, data.paths.tables / schema.TRANSACTIONS_TABLE), "customer_idx", None, data)

    return [articles, customers, transactions]
