"""Linear assignment with a cost limit, with the semantics of `lap.lapjv(cost, extend_cost=True,
cost_limit=limit)`, which Ultralytics' trackers use.

lapjv with a cost limit solves the square problem extended so that every row and column may stay
unmatched at limit / 2 each; a pair is therefore worth matching only while its cost stays below
the limit, and the result minimises sum(cost - limit) over the matched pairs. That is a
maximum-weight matching with weights limit - cost over the pairs with cost <= limit, which is
what `match` solves with scipy's Hungarian solver (zero weight for the other pairs). It is not
"assign everything, then drop pairs over the limit": with costs [[0.1, 0.45], [0.45, 0.9]] and
limit 0.5, lapjv and `match` keep (0, 0) alone.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def match(cost: np.ndarray, limit: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs minimising sum(cost - limit) over pairs with cost <= limit.

    cost: float [N, M]. Returns (pairs int64 [K, 2] of (row, column) sorted by row,
    unmatched rows int64 [N - K], unmatched columns int64 [M - K]), both ascending.
    """
    n, m = cost.shape
    allowed = cost <= limit
    pairs = np.zeros((0, 2), dtype=np.int64)
    if allowed.any():
        rows, cols = linear_sum_assignment(np.where(allowed, limit - cost, 0.0), maximize=True)
        keep = allowed[rows, cols]
        pairs = np.stack([rows[keep], cols[keep]], axis=1).astype(np.int64)
    return pairs, _unmatched(n, pairs[:, 0]), _unmatched(m, pairs[:, 1])


def _unmatched(size: int, matched: np.ndarray) -> np.ndarray:
    free = np.ones(size, dtype=np.bool_)
    free[matched] = False
    return np.flatnonzero(free)
