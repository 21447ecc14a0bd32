"""Small helpers that turn pure-stage results into MLflow records and Dagster metadata."""

import base64
import io as _io

import dagster as dg


def log_curve(prefix: str, history: dict) -> None:
    """Per-epoch losses of a training history (``{"loss": [...]}``) as MLflow metric steps."""
    import mlflow

    for step, value in enumerate(history.get("loss", [])):
        mlflow.log_metric(f"{prefix}_loss", float(value), step=step)


def markdown_table(rows: list[dict], floatfmt: str = ".4f") -> dg.MetadataValue:
    if not rows:
        return dg.MetadataValue.md("(empty)")
    cols = list(rows[0])
    fmt = lambda v: format(v, floatfmt) if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in rows]
    return dg.MetadataValue.md("\n".join(lines))


def png_markdown(figure) -> dg.MetadataValue:
    """A matplotlib figure inlined as a data-URI image, which the Dagster UI renders in metadata."""
    buf = _io.BytesIO()
    figure.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode()
    return dg.MetadataValue.md(f"![plot](data:image/png;base64,{data})")
