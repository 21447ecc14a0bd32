"""``history``: the transactions a target week may learn from, as an asset of its own.

Every per-week artifact depends on ``history`` of its week rather than on the whole ``transactions``
table. Its data version hashes only the rows before the week's cutoff (plus the master tables that
give the keys their meaning), so appending a new week of purchases leaves every earlier week's
history, and so its towers, candidates and features, in sync: only what can see the new rows is
rebuilt. It is also the leakage gate made visible: nothing downstream of history(W) can see week W.
"""

import dagster as dg

from hm_recsys import schema
from hm_recsys.defs.jobs import CPU_TAGS
from hm_recsys.defs.resources import DataResource
from hm_recsys.defs.versioning import code_version

# What a per-week asset depends on in place of the whole transactions table: its week's history.
TABLES = ["history"]


def history_version(tables_dir, week_key: str) -> tuple[str, dict]:
    """A content hash of the transactions before the week, the articles and the customers.

    ``content_hash`` lays out every byte it hashes itself, so the version survives a polars upgrade
    (``hash_rows``, used before, is documented as unstable across versions)."""
    import hashlib

    import polars as pl

    from hm_recsys import content_hash
    from hm_recsys.weeks import TargetWeek, history

    week = TargetWeek.from_key(week_key)
    rows = history(pl.scan_parquet(tables_dir / schema.TRANSACTIONS_TABLE), week).collect()
    h = hashlib.blake2b(digest_size=16)
    content_hash.update(h, rows)
    for table in (schema.ARTICLES_TABLE, schema.CUSTOMERS_TABLE):
        content_hash.update(h, pl.read_parquet(tables_dir / table))
    last = rows["t_dat"].max() if rows.height else None
    return h.hexdigest(), {"rows": rows.height, "last_day": str(last), "cutoff": str(week.cutoff)}


def build(weeks: dg.PartitionsDefinition, automation: dg.AutomationCondition) -> dg.AssetsDefinition:
    @dg.asset(
        partitions_def=weeks, deps=["transactions", "articles", "customers"], group_name="tables",
        code_version=code_version("2"), kinds={"polars"}, automation_condition=automation, op_tags=CPU_TAGS,
    )
    def history(context: dg.AssetExecutionContext, data: DataResource) -> dg.MaterializeResult:
        """The transactions strictly before the week (what it may learn from), versioned by their content."""
        version, meta = history_version(data.paths.tables, context.partition_key)
        return dg.MaterializeResult(data_version=dg.DataVersion(version), metadata=meta)

    return history
