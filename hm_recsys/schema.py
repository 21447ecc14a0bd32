"""The Kaggle H&M file schema (raw CSVs) and the typed Parquet tables built from it.

Everything that reads or writes the raw files takes column names and order from here, so the
synthetic world, the profiler and the ingestion can never drift apart.
"""

from __future__ import annotations

import polars as pl

ARTICLES_CSV = "articles.csv"
CUSTOMERS_CSV = "customers.csv"
TRANSACTIONS_CSV = "transactions_train.csv"
IMAGES_DIR = "images"

# articles.csv: 25 columns in the competition's order. Codes are integers, names strings;
# article_id is a zero-padded 10-digit string (read as int it loses its leading zero).
ARTICLE_COLUMNS: dict[str, pl.DataType] = {
    "article_id": pl.String,
    "product_code": pl.Int32,
    "prod_name": pl.String,
    "product_type_no": pl.Int32,
    "product_type_name": pl.String,
    "product_group_name": pl.String,
    "graphical_appearance_no": pl.Int32,
    "graphical_appearance_name": pl.String,
    "colour_group_code": pl.Int32,
    "colour_group_name": pl.String,
    "perceived_colour_value_id": pl.Int32,
    "perceived_colour_value_name": pl.String,
    "perceived_colour_master_id": pl.Int32,
    "perceived_colour_master_name": pl.String,
    "department_no": pl.Int32,
    "department_name": pl.String,
    "index_code": pl.String,
    "index_name": pl.String,
    "index_group_no": pl.Int32,
    "index_group_name": pl.String,
    "section_no": pl.Int32,
    "section_name": pl.String,
    "garment_group_no": pl.Int32,
    "garment_group_name": pl.String,
    "detail_desc": pl.String,
}

# customers.csv: FN / Active are "1.0" or empty, age a float or empty.
CUSTOMER_COLUMNS: dict[str, pl.DataType] = {
    "customer_id": pl.String,
    "FN": pl.Float32,
    "Active": pl.Float32,
    "club_member_status": pl.String,
    "fashion_news_frequency": pl.String,
    "age": pl.Float32,
    "postal_code": pl.String,
}

# transactions_train.csv
TRANSACTION_COLUMNS: dict[str, pl.DataType] = {
    "t_dat": pl.Date,
    "customer_id": pl.String,
    "article_id": pl.String,
    "price": pl.Float64,
    "sales_channel_id": pl.Int8,
}

# Typed tables (DATA/tables/*.parquet). Compact integer keys (article_idx, customer_idx: 0..n-1,
# in the raw file's row order) carry every join; the original string ids stay for output.
ARTICLES_TABLE = "articles.parquet"      # article_idx Int32 + ARTICLE_COLUMNS
CUSTOMERS_TABLE = "customers.parquet"    # customer_idx Int32 + CUSTOMER_COLUMNS
TRANSACTIONS_TABLE = "transactions.parquet"
TRANSACTIONS_TABLE_SCHEMA: dict[str, pl.DataType] = {
    "t_dat": pl.Date,
    "customer_idx": pl.Int32,
    "article_idx": pl.Int32,
    "price": pl.Float32,
    "sales_channel_id": pl.Int8,
}

# Categorical article attributes the models use (the two-tower item tower and the ranker).
ARTICLE_ATTRIBUTES: tuple[str, ...] = (
    "product_type_no",
    "product_group_name",
    "graphical_appearance_no",
    "colour_group_code",
    "perceived_colour_value_id",
    "perceived_colour_master_id",
    "department_no",
    "index_code",
    "index_group_no",
    "section_no",
    "garment_group_no",
)

ARTICLE_ID_DIGITS = 10
CUSTOMER_ID_LENGTH = 64
