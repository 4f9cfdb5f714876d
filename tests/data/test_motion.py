"""Tests of maskrt.data.motion: the events that make a synthetic video a test of tracking."""

from __future__ import annotations

import math

import numpy as np
import pytest

from maskrt.data import iter_video_frames
from maskrt.data.motion import MovingShape, VideoEvents, _bounce, apply_events, camera_offset, sample_moving_shapes

SIZE = (96, 128)


def shape(**changes) -> MovingShape:
    base = dict(object_id=0, label=1, x0=10.0, y0=20.0, vx=30.0, vy=-12.0, radius=8.0, angle0=0.0, spin=0.0,
                scale_amp=0.0, scale_freq=0.0, scale_phase=0.0)
    return MovingShape(**{**base, **changes})


def frames(num, seed, **events):
    return [scene for _, scene in iter_video_frames(num, SIZE, seed, **events)]


def presence(scenes) -> dict[int, list[int]]:
    """object id -> the frame indices it is visible in."""
    seen: dict[int, list[int]] = {}
    for index, scene in enumerate(scenes):
        for oid in scene.object_ids.tolist():
            seen.setdefault(oid, []).append(index)
    return seen


def test_bounce_matches_a_ball_stepped_between_two_walls():
    low, high, x, v, dt = -5.0, 17.0, 3.0, 7.0, 1e-3
    for step in range(1, 20001):  # 20 s: several round trips
        x += v * dt
        if x > high:
            x, v = 2 * high - x, -v
        elif x < low:
            x, v = 2 * low - x, -v
        if step % 1000 == 0:
            assert _bounce(3.0 + 7.0 * step * dt, low, high) == pytest.approx(x, abs=1e-6)


def test_speed_changes_integrate_the_speed_factor():
    s = shape(knots=(1.0, 2.5), factors=(0.0, 3.0))
    for t in (0.5, 1.0, 1.7, 2.5, 4.0):
        ts = np.linspace(0.0, t, 200001)
        factor = np.where(ts <= 1.0, 1.0, np.where(ts <= 2.5, 0.0, 3.0))
        travel = np.trapezoid(factor, ts)  # the oracle: the factor integrated numerically
        at = s.at(t)
        assert at.cx == pytest.approx(10.0 + 30.0 * travel, abs=1e-3)
        assert at.cy == pytest.approx(20.0 - 12.0 * travel, abs=1e-3)
    assert s.at(1.2).cx == s.at(2.4).cx  # stopped between the knots


def test_no_events_leave_the_motion_unchanged():
    rng = np.random.default_rng(3)
    objects = sample_moving_shapes(rng, *SIZE, duration=2.0)
    assert apply_events(objects, VideoEvents(), 3, *SIZE, 2.0) == objects


def test_crossing_pairs_meet_at_one_point_inside_the_frame():
    rng = np.random.default_rng(4)
    objects = apply_events(sample_moving_shapes(rng, *SIZE, duration=4.0, num_objects=(4, 4)),
                           VideoEvents(crossings=2), 4, *SIZE, 4.0)
    ts = np.linspace(0, 4.0, 4001)
    for a, b in ((objects[0], objects[1]), (objects[2], objects[3])):
        gap = [math.hypot(a.at(t).cx - b.at(t).cx, a.at(t).cy - b.at(t).cy) for t in ts]
        k = int(np.argmin(gap))
        assert gap[k] < 0.5  # they meet (to the time grid's resolution)
        meet = a.at(ts[k])
        assert 0.2 * SIZE[1] < meet.cx < 0.8 * SIZE[1] and 0.2 * SIZE[0] < meet.cy < 0.8 * SIZE[0]


def test_returning_objects_leave_the_frame_and_come_back_with_their_id():
    scenes = frames(240, 5, returns=3, num_objects=(3, 3))
    seen = presence(scenes)
    gaps = [np.diff(frames_in).max() for frames_in in seen.values() if len(frames_in) > 1]
    assert len(seen) == 3 and sum(gap > 1 for gap in gaps) >= 2  # away for a while, then back


def test_occluders_hide_every_object_inside_their_band():
    with_band = frames(60, 6, occluders=1, num_objects=(6, 6))
    without = frames(60, 6, num_objects=(6, 6))
    covered_with = np.any([s.masks.any(axis=(0, 1)) for s in with_band if len(s.masks)], axis=0)
    covered_without = np.any([s.masks.any(axis=(0, 1)) for s in without if len(s.masks)], axis=0)
    band = np.flatnonzero(covered_without & ~covered_with)  # columns objects cross only without the band
    assert len(band) >= 0.06 * SIZE[1] - 1 and np.all(np.diff(band) == 1)  # one band, about its width
    assert not (covered_with & ~covered_without).any()  # the band adds no object pixel anywhere
    outside = np.ones(SIZE[1], bool)
    outside[band] = False
    for a, b in zip(with_band, without):  # outside the band nothing changed (where no object was culled)
        if a.object_ids.tolist() == b.object_ids.tolist():
            np.testing.assert_array_equal(a.masks[:, :, outside], b.masks[:, :, outside])


def test_pan_shifts_background_and_objects_by_whole_pixels():
    pan = 45.0
    still = frames(20, 7, paint="flat", pan=0.0)
    panned = frames(20, 7, paint="flat", pan=pan)
    background = frames(20, 7, paint="background", pan=pan)
    for index in (5, 13, 19):
        o = camera_offset(index / 30.0, pan)
        assert o > 0
        # the background moved left by o pixels: frame index's column x is frame 0's column x + o
        np.testing.assert_array_equal(background[index].image[:, :-o], background[0].image[:, o:][:, :SIZE[1] - o])
        a, b = still[index], panned[index]
        common = sorted(set(a.object_ids.tolist()) & set(b.object_ids.tolist()))
        for oid in common:
            ma, mb = a.masks[a.object_ids == oid][0], b.masks[b.object_ids == oid][0]
            if ma.sum() == mb.sum() and not ma[:, :o].any():  # wholly in view in both
                np.testing.assert_array_equal(mb[:, :SIZE[1] - o], ma[:, o:])


@pytest.mark.parametrize("bad", [{"crossings": -1}, {"returns": 1.5}, {"occluders": True}, {"pan": math.inf}])
def test_bad_event_counts_are_refused(bad):
    with pytest.raises(ValueError):
        VideoEvents(**bad)
