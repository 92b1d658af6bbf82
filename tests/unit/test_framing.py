"""Pure geometry of the prepare step (clipedit.domain.framing) and the auto-focus path
(clipedit_media.focus) on numbers and small synthetic frames: no video."""

from __future__ import annotations

import numpy as np
import pytest

from clipedit.domain.framing import clamp_origin, crop_origin, even, pad_layout
from clipedit_media.focus import (
    DEAD_ZONE_FRACTION,
    MAX_STEP_FRACTION,
    analysis_size,
    best_centre,
    follow,
    window_path,
)

# --- geometry ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [(1080, 1080), (1081, 1080), (607.5, 606), (1.0, 2), (0.0, 2)])
def test_even_rounds_down_to_an_even_size_of_at_least_two(value: float, expected: int) -> None:
    assert even(value) == expected


def test_centre_crop_of_a_16_9_frame_to_9_16() -> None:
    assert crop_origin(1920, 1080, 606, 1080, "center") == (656, 0)  # (1920 - 606) / 2 = 657 -> even


@pytest.mark.parametrize(("focus", "expected_x"), [((0.0, 0.5), 0), ((1.0, 0.5), 1920 - 606), ((0.3, 0.5), 272)])
def test_fixed_focus_centres_the_window_on_the_point_and_stays_inside(focus, expected_x: int) -> None:
    x, y = crop_origin(1920, 1080, 606, 1080, focus)
    assert x == expected_x and y == 0
    assert 0 <= x <= 1920 - 606 and x % 2 == 0


def test_clamp_origin_keeps_an_even_start_inside_the_extent() -> None:
    for centre in np.linspace(-100, 2100, 97):
        start = clamp_origin(float(centre), 607, 1921)
        assert 0 <= start <= 1921 - 607 and start % 2 == 0


@pytest.mark.parametrize(("src", "out"), [((1920, 1080), (1080, 1920)), ((1080, 1920), (1920, 1080)),
                                         ((1920, 1080), (1080, 1080)), ((854, 480), (1080, 1080))])
def test_pad_layout_keeps_the_whole_frame_centred_with_its_aspect(src, out) -> None:
    layout = pad_layout(*src, *out)
    assert layout.width <= out[0] and layout.height <= out[1]
    assert layout.x + layout.width <= out[0] and layout.y + layout.height <= out[1]
    assert min(out[0] - layout.width, out[1] - layout.height) <= 1  # fills one dimension
    assert abs(layout.width / layout.height - src[0] / src[1]) < 0.01
    assert all(v % 2 == 0 for v in (layout.width, layout.height, layout.x, layout.y))
    assert abs((out[0] - layout.width) / 2 - layout.x) <= 1 and abs((out[1] - layout.height) / 2 - layout.y) <= 1


# --- the follower on numbers -------------------------------------------------------------------


def test_follow_never_moves_more_than_the_bound_even_for_a_jump() -> None:
    targets = [300.0] * 10 + [1700.0] * 80  # a cut: the subject is suddenly across the frame
    path = follow(targets, extent=1920, window=606)
    steps = np.abs(np.diff(path))
    assert steps.max() <= MAX_STEP_FRACTION * 1920 + 1e-9
    assert path[-1] == pytest.approx(1920 - 303, abs=1)  # ends on the target (clamped to the frame)


def test_follow_ignores_a_target_that_wanders_inside_the_dead_zone() -> None:
    rng = np.random.default_rng(3)
    jitter = DEAD_ZONE_FRACTION * 606 * 0.9
    targets = 960 + rng.uniform(-jitter, jitter, 300)
    path = follow(targets, extent=1920, window=606, start=960)
    assert set(path) == {960}


def test_follow_catches_a_subject_moving_slower_than_the_bound() -> None:
    speed = 0.8 * MAX_STEP_FRACTION * 1920
    targets = [303 + speed * i for i in range(int((1920 - 606) / speed))]
    path = follow(targets, extent=1920, window=606)
    lag = np.abs(np.array(targets) - np.array(path))
    assert lag.max() < 606 / 2 - 100  # a 200 px wide subject stays inside the window


def test_best_centre_centres_a_small_subject_and_does_not_flip_between_equal_ones() -> None:
    profile = np.zeros(160, np.float32)
    profile[40:50] = 1.0
    assert best_centre(profile, 50) == pytest.approx(45)
    profile[120:130] = 1.0  # an equal second subject: stay with the one near the window
    assert best_centre(profile, 50, previous=47) == pytest.approx(45)
    assert best_centre(profile, 50, previous=118) == pytest.approx(125)


# --- the tracker on synthetic small frames -----------------------------------------------------


def _frames(n: int, positions: list[int], size: int = 12, shape: tuple[int, int] = (90, 160)) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    background = rng.integers(90, 110, shape, dtype=np.uint8)
    frames = []
    for i in range(n):
        frame = background + rng.integers(-2, 3, shape).astype(np.uint8)  # sensor/codec noise
        x = positions[i]
        frame[39:39 + size, x:x + size] = np.where(np.arange(size) % 4 < 2, 230, 20).astype(np.uint8)
        frames.append(frame)
    return frames


def test_window_follows_a_subject_crossing_the_frame() -> None:
    n, frame_w, crop_w, size = 120, 1920, 606, 12  # 12 cells of 160 = 144 source px
    positions = [round((160 - size) * i / (n - 1)) for i in range(n)]
    path = window_path(_frames(n, positions, size), frame_w, 1080, crop_w, 1080)
    scale = frame_w / 160
    inside = [x <= p * scale and (p + size) * scale <= x + crop_w for (x, _), p in zip(path, positions)]
    assert sum(inside) / n >= 0.95
    xs = [x for x, _ in path]
    assert max(abs(b - a) for a, b in zip(xs, xs[1:])) <= MAX_STEP_FRACTION * frame_w + 2  # + even rounding
    assert all(y == 0 for _, y in path)


def test_window_stays_still_on_a_still_subject() -> None:
    positions = [100] * 60
    path = window_path(_frames(60, positions), 1920, 1080, 606, 1080)
    assert len(set(path[1:])) == 1


def test_window_stays_still_on_a_fidgeting_subject() -> None:
    positions = [100 + (i % 3) - 1 for i in range(90)]  # +-1 cell (12 source px) back and forth
    path = window_path(_frames(90, positions), 1920, 1080, 606, 1080)
    assert len(set(path[10:])) == 1


def test_window_moves_vertically_when_the_crop_is_shorter_than_the_frame() -> None:
    n = 90  # a 9:16 frame cropped to 16:9: the window slides on y; draw the subject moving down
    frames = []
    for i in range(n):
        frame = np.full((160, 90), 100, np.uint8)
        top = round((160 - 12) * i / (n - 1))
        frame[top:top + 12, 40:52] = np.where(np.arange(12) % 4 < 2, 230, 20).astype(np.uint8)[:, None]
        frames.append(frame)
    path = window_path(frames, 1080, 1920, 1080, 606)
    ys = [y for _, y in path]
    assert ys[-1] > ys[0] + 600 and all(x == 0 for x, _ in path)


def test_analysis_size_is_small_and_keeps_the_aspect() -> None:
    assert analysis_size(3840, 2160) == (160, 90)
    assert analysis_size(1080, 1920) == (160, 284)
    assert analysis_size(100, 60) == (100, 60)
