"""Seeded, deterministic train/val/test split that never separates a group.

A group is a near-duplicate cluster (joined with records sharing the same prompt), so a test
question can never have a near-copy in training. Labelled data is stratified: each label's groups
are split on their own, so every split keeps the label proportions.

    assign_splits(groups=np.array([0, 0, 2, 3]), labels=None, fractions=(0.5, 0.25, 0.25), seed=1)
    -> array([0, 0, 1, 2], dtype=int8)  # train=0, val=1, test=2 (which group goes where depends on seed)
"""
from __future__ import annotations

import numpy as np

SPLITS = ("train", "val", "test")


def assign_splits(groups: np.ndarray, labels: np.ndarray | None, fractions: tuple[float, float, float],
                  seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros(len(groups), dtype=np.int8)
    strata = [np.arange(len(groups))] if labels is None else [np.flatnonzero(labels == v) for v in np.unique(labels)]
    for members in strata:
        _assign_stratum(groups[members], members, fractions, rng, out)
    return out


def _assign_stratum(groups: np.ndarray, members: np.ndarray, fractions, rng, out: np.ndarray) -> None:
    uniq, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    order = rng.permutation(len(uniq))
    filled = np.cumsum(sizes[order]) - sizes[order]  # records placed before each group
    bounds = np.array([fractions[0], fractions[0] + fractions[1]]) * len(members)
    split_of_group = np.empty(len(uniq), dtype=np.int8)
    split_of_group[order] = np.searchsorted(np.round(bounds), filled, side="right").astype(np.int8)
    out[members] = split_of_group[inverse]


def merge_groups(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected components of two groupings (records joined if they share a or b); ids are the
    smallest record index of each component."""
    label = np.arange(len(a))
    while True:
        # each record takes the smallest label seen in its a-group and its b-group
        new = label.copy()
        for key in (a, b):
            low = np.full(key.max() + 1 if len(key) else 0, np.iinfo(np.int64).max, dtype=np.int64)
            np.minimum.at(low, key, new)
            new = np.minimum(new, low[key])
        if np.array_equal(new, label):
            return label
        label = new


def cross_split_groups(groups: np.ndarray, split: np.ndarray) -> int:
    """How many groups have members in more than one split (leakage; 0 after assign_splits)."""
    if len(groups) == 0:
        return 0
    order = np.lexsort((split, groups))
    g, s = groups[order], split[order]
    differs = (g[1:] == g[:-1]) & (s[1:] != s[:-1])
    return int(len(np.unique(g[1:][differs])))
