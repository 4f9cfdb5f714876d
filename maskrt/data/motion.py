"""Motion of the objects of a synthetic video, and the events that make it a test of tracking.

By default every object moves at a constant velocity and crosses the frame once (entering and
leaving it). `VideoEvents` adds what trackers find hard, each drawn from its own random stream
(so a clip without events is the same as before, and one event leaves the others' draws alone):

- crossings: pairs of objects sent through one point at the same time (the one drawn later
  passes in front of the other: a full or partial occlusion while they cross);
- occluders: vertical bands of background in front of every object (poles: objects pass behind
  them and reappear), fixed in the scene, so they move with a panning camera;
- returns: objects that leave the frame and come back, bouncing off walls outside it (the time
  outside is 0.2 to 1.5 s, so some return within ByteTrack's 1 s buffer and some after it);
- speed_changes: objects whose speed changes abruptly once or twice (stops, slows down to a
  third, speeds up two- or threefold);
- pan: the camera pans horizontally at this many pixels per second: the background and every
  object shift by -pan * t (rounded to whole pixels, so the background moves by whole pixels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from maskrt.data.geometry import Shape, sample_shapes

SPEED_FACTORS = (0.0, 1.0 / 3.0, 2.0, 3.0)


@dataclass(frozen=True)
class MovingShape:
    """Motion of one object; positions in pixels, rates per second.

    ``x0, y0`` is the centre at ``t = 0``, ``vx, vy`` the initial velocity, ``spin`` the angular
    velocity (rad/s). The radius oscillates: ``radius * (1 + scale_amp * sin(2 pi scale_freq t
    + scale_phase))``. After each time in ``knots`` the speed is ``factors[k]`` times the initial
    one; with ``bounds`` (x_lo, x_hi, y_lo, y_hi) the centre bounces off those walls.
    """

    object_id: int
    label: int
    x0: float
    y0: float
    vx: float
    vy: float
    radius: float
    angle0: float
    spin: float
    scale_amp: float
    scale_freq: float
    scale_phase: float
    knots: tuple[float, ...] = ()
    factors: tuple[float, ...] = ()
    bounds: tuple[float, float, float, float] | None = None

    def at(self, t: float) -> Shape:
        """Geometry at time ``t`` seconds."""
        phase = 2 * math.pi * self.scale_freq * t + self.scale_phase
        scale = 1.0 + self.scale_amp * math.sin(phase)
        travel = self._travel(t)
        x, y = self.x0 + self.vx * travel, self.y0 + self.vy * travel
        if self.bounds is not None:
            x, y = _bounce(x, self.bounds[0], self.bounds[1]), _bounce(y, self.bounds[2], self.bounds[3])
        return Shape(self.label, x, y, self.radius * scale, self.angle0 + self.spin * t)

    def _travel(self, t: float) -> float:
        """Time-equivalent distance: the integral of the speed factor from 0 to t (t without knots)."""
        if not self.knots:
            return t
        travel, start, factor = 0.0, 0.0, 1.0
        for knot, after in zip(self.knots, self.factors):
            if t <= knot:
                break
            travel += factor * (knot - start)
            start, factor = knot, after
        return travel + factor * (t - start)


def _bounce(value: float, low: float, high: float) -> float:
    """`value` folded into [low, high] as a ball bouncing between two walls."""
    span = high - low
    offset = (value - low) % (2 * span)
    return low + (offset if offset <= span else 2 * span - offset)


def sample_moving_shapes(
    rng: np.random.Generator,
    height: int,
    width: int,
    duration: float,
    num_objects: tuple[int, int] = (2, 8),
    min_size: float = 8.0,
    max_size_frac: float = 0.5,
) -> list[MovingShape]:
    """Random motions (back to front).  Each object is inside the frame at a random
    crossing time in ``[0, duration]`` and moves at 5%..50% of ``min(H, W)`` per second,
    so objects enter and leave the frame during longer clips."""
    shapes = sample_shapes(rng, height, width, num_objects, min_size, max_size_frac)
    side = min(height, width)
    moving = []
    for k, s in enumerate(shapes):
        speed, heading = rng.uniform(0.05, 0.5) * side, rng.uniform(0, 2 * math.pi)
        vx, vy = speed * math.cos(heading), speed * math.sin(heading)
        t_cross = rng.uniform(0, duration)
        cx, cy = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height
        spin = rng.uniform(-math.pi / 2, math.pi / 2)
        scale_amp, scale_freq = rng.uniform(0, 0.3), rng.uniform(0.1, 0.5)
        phase = rng.uniform(0, 2 * math.pi)
        moving.append(MovingShape(k, s.label, cx - vx * t_cross, cy - vy * t_cross, vx, vy,
                                  s.radius, s.angle, spin, scale_amp, scale_freq, phase))
    return moving


@dataclass(frozen=True)
class VideoEvents:
    """How many of each event a clip has (see the module docstring); all zero: none."""

    crossings: int = 0
    occluders: int = 0
    returns: int = 0
    speed_changes: int = 0
    pan: float = 0.0

    def __post_init__(self) -> None:
        for name in ("crossings", "occluders", "returns", "speed_changes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if not math.isfinite(self.pan):
            raise ValueError(f"pan must be a finite number of pixels per second, got {self.pan!r}")

    def as_dict(self) -> dict:
        return {"crossings": self.crossings, "occluders": self.occluders, "returns": self.returns,
                "speed_changes": self.speed_changes, "pan": self.pan}


def apply_events(objects: list[MovingShape], events: VideoEvents, seed: int, height: int, width: int,
                 duration: float) -> list[MovingShape]:
    """The objects with crossings, returns and speed changes applied (each from its own stream)."""
    objects = list(objects)
    rng_cross, rng_return, rng_speed = (np.random.default_rng([seed, 20, k]) for k in range(3))
    order = list(range(len(objects)))
    for pair in range(min(events.crossings, len(objects) // 2)):
        a, b = order[2 * pair], order[2 * pair + 1]
        objects[a], objects[b] = _crossing(rng_cross, objects[a], objects[b], height, width, duration)
    for k in rng_return.permutation(len(objects))[:events.returns].tolist():
        objects[k] = _returning(rng_return, objects[k], height, width)
    for k in rng_speed.permutation(len(objects))[:events.speed_changes].tolist():
        count = int(rng_speed.integers(1, 3))
        knots = tuple(sorted(rng_speed.uniform(0.15, 0.85, size=count) * duration))
        factors = tuple(float(rng_speed.choice(SPEED_FACTORS)) for _ in range(count))
        objects[k] = replace(objects[k], knots=knots, factors=factors)
    return objects


def _crossing(rng: np.random.Generator, a: MovingShape, b: MovingShape, height: int, width: int,
              duration: float) -> tuple[MovingShape, MovingShape]:
    """a and b sent through one point P inside the frame at one time, 60 to 120 degrees apart."""
    t = rng.uniform(0.25, 0.75) * duration
    px, py = rng.uniform(0.25, 0.75) * width, rng.uniform(0.25, 0.75) * height
    speed = max(math.hypot(a.vx, a.vy), 0.15 * min(height, width))
    heading = rng.uniform(0, 2 * math.pi)
    turn = rng.uniform(math.pi / 3, 2 * math.pi / 3) * rng.choice([-1.0, 1.0])
    moved = []
    for shape, angle in ((a, heading), (b, heading + turn)):
        vx, vy = speed * math.cos(angle), speed * math.sin(angle)
        moved.append(replace(shape, x0=px - vx * t, y0=py - vy * t, vx=vx, vy=vy))
    return moved[0], moved[1]


def _returning(rng: np.random.Generator, shape: MovingShape, height: int, width: int) -> MovingShape:
    """`shape` bouncing off walls outside the frame: it leaves fully and comes back after 0.2-1.5 s."""
    speed = max(math.hypot(shape.vx, shape.vy), 0.4 * min(height, width))
    heading = math.atan2(shape.vy, shape.vx)
    vx, vy = speed * math.cos(heading), speed * math.sin(heading)
    reach = shape.radius * (1 + shape.scale_amp)  # the farthest a point of the shape is from its centre
    margin = reach + 0.5 * rng.uniform(0.2, 1.5) * speed  # out and back at `speed`
    x0, y0 = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
    return replace(shape, x0=x0, y0=y0, vx=vx, vy=vy, bounds=(-margin, width + margin, -margin, height + margin))


def camera_offset(t: float, pan: float) -> int:
    """Whole pixels the camera has panned right by time t (negative: left)."""
    return int(math.floor(pan * t + 0.5))


def occluder_bands(events: VideoEvents, seed: int, width: int, scene_width: int) -> list[tuple[int, int]]:
    """[x0, x1) column ranges of the occluders in scene columns (the scene is the frame's width plus
    what a panning camera sweeps): each 6 to 12% of the frame's width, anywhere in the scene but
    its outer tenths of a frame."""
    rng = np.random.default_rng([seed, 21])
    bands = []
    for _ in range(events.occluders):
        w = max(1, int(rng.uniform(0.06, 0.12) * width))
        x = int(rng.uniform(0.1 * width, max(0.1 * width, scene_width - 0.1 * width - w)))
        bands.append((x, x + w))
    return bands


def shift(shape: Shape, dx: float) -> Shape:
    """`shape` moved right by dx pixels."""
    return replace(shape, cx=shape.cx + dx)
