"""Batched constant-velocity Kalman filter on boxes in xyah form, as Ultralytics' KalmanFilterXYAH.

State [8]: (cx, cy, a, h, vcx, vcy, va, vh): box centre, aspect ratio a = w / h, height h, and
their velocities per nominal frame interval. A box is observed directly as (cx, cy, a, h).
Noise is relative to the height, as in ByteTrack and Ultralytics: position std h / 20,
velocity std h / 160 (aspect ratio: fixed stds).

Time is measured in nominal frame intervals ("steps", real-valued). Advancing by `steps`
applies floor(steps) whole steps, each exactly one Ultralytics frame prediction (noise computed
from the height before the step), then one fractional step of length f = steps - floor(steps)
that moves the mean by f x velocity and adds f x the one-step process noise (a random walk's
variance grows linearly in time). So a gap of dropped frames predicts as many frames as were
dropped, and a jittery timestamp predicts a proportional fraction of a frame.
"""

from __future__ import annotations

import math

import numpy as np

STD_POSITION = 1.0 / 20
STD_VELOCITY = 1.0 / 160
# Steps within this of an integer are that integer (timestamps rounded to microseconds, sums of 1/30).
STEP_SNAP = 1e-3
_ASPECT_PROCESS_STD, _ASPECT_VELOCITY_STD, _ASPECT_MEASURE_STD = 1e-2, 1e-5, 1e-1


def initiate(xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New tracks from measurements.

    xyah: float [N, 4]. Returns mean float64 [N, 8] (zero velocities) and covariance float64 [N, 8, 8].
    """
    xyah = np.asarray(xyah, dtype=np.float64).reshape(-1, 4)
    mean = np.concatenate([xyah, np.zeros_like(xyah)], axis=1)
    h = xyah[:, 3]
    std = np.stack([2 * STD_POSITION * h, 2 * STD_POSITION * h, np.full_like(h, 1e-2), 2 * STD_POSITION * h,
                    10 * STD_VELOCITY * h, 10 * STD_VELOCITY * h, np.full_like(h, 1e-5), 10 * STD_VELOCITY * h],
                   axis=1)
    return mean, _diagonal(std**2)


def predict(mean: np.ndarray, cov: np.ndarray, steps: float,
            frozen_height: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Advance states by `steps` nominal frame intervals (>= 0; see the module docstring).

    mean: float64 [N, 8]; cov: float64 [N, 8, 8]; frozen_height: bool [N] or None, states whose
    height velocity is zeroed first (Ultralytics does so for lost tracks). Returns new arrays.
    """
    whole, fraction = split_steps(steps)
    mean = mean.copy()
    if frozen_height is not None:
        mean[frozen_height, 7] = 0.0
    for _ in range(whole):
        mean, cov = _step(mean, cov, 1.0)
    if fraction:
        mean, cov = _step(mean, cov, fraction)
    return mean, cov


def predict_mean(mean: np.ndarray, steps: float) -> np.ndarray:
    """The mean alone advanced by `steps` (velocities kept): float64 [N, 8] -> [N, 8]."""
    whole, fraction = split_steps(steps)
    out = mean.copy()
    out[:, :4] += (whole + fraction) * mean[:, 4:]
    return out


def update(mean: np.ndarray, cov: np.ndarray, xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correct predicted states with measurements (one per state).

    mean: float64 [N, 8]; cov: float64 [N, 8, 8]; xyah: float [N, 4]. Returns the corrected
    mean [N, 8] and covariance [N, 8, 8] (new arrays).
    """
    h = mean[:, 3]
    measure_std = np.stack([STD_POSITION * h, STD_POSITION * h, np.full_like(h, _ASPECT_MEASURE_STD),
                            STD_POSITION * h], axis=1)
    innovation_cov = cov[:, :4, :4] + _diagonal(measure_std**2)  # [N, 4, 4]
    cross = cov[:, :, :4]  # [N, 8, 4]: covariance of the state with the measured part
    gain = np.linalg.solve(innovation_cov, cross.transpose(0, 2, 1)).transpose(0, 2, 1)  # [N, 8, 4]
    innovation = np.asarray(xyah, dtype=np.float64) - mean[:, :4]
    new_mean = mean + np.einsum("nij,nj->ni", gain, innovation)
    new_cov = cov - gain @ innovation_cov @ gain.transpose(0, 2, 1)
    return new_mean, new_cov


def split_steps(steps: float) -> tuple[int, float]:
    """(whole steps, fractional remainder in [0, 1)) of `steps` >= 0, snapped to integers within STEP_SNAP."""
    nearest = round(steps)
    if abs(steps - nearest) < STEP_SNAP:
        return int(nearest), 0.0
    whole = math.floor(steps)
    return whole, steps - whole


def _step(mean: np.ndarray, cov: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """One prediction over dt <= 1 step: x += dt * v; P = F P F^T + dt * Q(h)."""
    h = mean[:, 3]
    std = np.stack([STD_POSITION * h, STD_POSITION * h, np.full_like(h, _ASPECT_PROCESS_STD), STD_POSITION * h,
                    STD_VELOCITY * h, STD_VELOCITY * h, np.full_like(h, _ASPECT_VELOCITY_STD), STD_VELOCITY * h],
                   axis=1)
    motion = np.eye(8)
    motion[:4, 4:] = dt * np.eye(4)
    new_mean = mean @ motion.T
    new_cov = motion @ cov @ motion.T + _diagonal(dt * std**2)
    return new_mean, new_cov


def _diagonal(values: np.ndarray) -> np.ndarray:
    """[N, K] -> [N, K, K] diagonal matrices."""
    n, k = values.shape
    out = np.zeros((n, k, k))
    out[:, np.arange(k), np.arange(k)] = values
    return out
