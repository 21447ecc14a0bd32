"""Vectorised categorical sampling shared by the generator's modules."""

from __future__ import annotations

import numpy as np


def draw_rows(table: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One column index per entry of ``rows``, drawn in proportion to row ``rows[i]`` of ``table``.

    All rows are laid end to end in one cumulative sum, so a single ``searchsorted`` serves every draw.
    """
    cum = np.cumsum(table, axis=1)
    total = cum[:, -1]
    offset = np.concatenate([[0.0], np.cumsum(total)[:-1]])
    flat = (cum + offset[:, None]).ravel()
    u = offset[rows] + rng.random(rows.size) * total[rows]
    pos = np.searchsorted(flat, u, side="right")
    return np.minimum(pos - rows * table.shape[1], table.shape[1] - 1)
