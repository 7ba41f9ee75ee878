"""Small data sets shipped with the examples (no download)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """8x8 handwritten digits: images (1797, 64) scaled to [0, 1], labels (1797,) int64."""
    with gzip.open(DATA / "digits.csv.gz", "rt") as f:
        table = np.loadtxt(f, delimiter=",")
    return table[:, :64] / 16.0, table[:, 64].astype(np.int64)


def split(x: np.ndarray, y: np.ndarray, test_fraction: float = 0.2, seed: int = 0):
    """A shuffled train/test split: (x_train, y_train, x_test, y_test)."""
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(len(x) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]
