"""Tests for refinekit.training.augment: differentiable DiffAugment/ADA transforms and ADA's p controller.

Images are tiny (16x16); numbers are checked against NumPy or hand-computed values.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refinekit.errors import ConfigError, UsageError
from refinekit.training.ada import AdaState, ada_adjust, ada_init, ada_observe
from refinekit.training.augment import (
    DEFAULT_POLICY,
    TRANSFORMS,
    _brightness,
    _contrast,
    _cutout,
    _rotate,
    _saturation,
    _translate,
    augment,
    parse_policy,
)

H = W = 16
ALL_RGB = tuple(TRANSFORMS)
DIFFAUGMENT = parse_policy(DEFAULT_POLICY, 3)

# One compilation per (shape, policy, type of p) shared by the tests; eager calls would compile
# op by op. Single-transform tests use MANY images so they share those compilations.
_aug = jax.jit(augment, static_argnames="policy")
MANY = 2000


def _images(n: int, c: int = 3, seed: int = 0) -> jax.Array:
    """(n, H, W, c) uniform in [-1, 1), from NumPy (jax.random would compile per shape)."""
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.uniform(-1.0, 1.0, (n, H, W, c)).astype(np.float32))


def _coordinates(n: int) -> np.ndarray:
    """(n, H, W, 1) images whose pixel value is its flat index + 1 (0 is left for fills)."""
    grid = (np.arange(H * W, dtype=np.float32) + 1).reshape(1, H, W, 1)
    return np.broadcast_to(grid, (n, H, W, 1)).copy()


def _np_shift(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """np.roll over (H, W) of one (H, W, C) image, with the wrapped-around pixels zeroed."""
    out = np.roll(x, (dy, dx), axis=(0, 1))
    if dy > 0:
        out[:dy] = 0
    elif dy < 0:
        out[dy:] = 0
    if dx > 0:
        out[:, :dx] = 0
    elif dx < 0:
        out[:, dx:] = 0
    return out


def _changed(x: jax.Array, y: jax.Array) -> np.ndarray:
    """(N,) bool: which images differ at all."""
    return np.asarray(jnp.any(x != y, axis=(1, 2, 3)))


# ----------------------------------------------------------------------------------------------
# parse_policy


def test_parse_policy_valid_names_in_order():
    assert DIFFAUGMENT == ("color", "translation", "cutout")
    assert parse_policy(" Flip , rotate,,noise ", 3) == ("flip", "rotate", "noise")
    assert parse_policy(",".join(TRANSFORMS), 3) == TRANSFORMS
    assert parse_policy("intensity,cutout", 3) == ("intensity", "cutout")


@pytest.mark.parametrize("channels", [1, 2, 4])
def test_parse_policy_non_rgb_drops_saturation(channels):
    assert parse_policy(DEFAULT_POLICY, channels) == ("intensity", "translation", "cutout")
    assert "color" not in parse_policy(",".join(TRANSFORMS), channels)


def test_parse_policy_unknown_name_names_flag_and_valid_names():
    with pytest.raises(ConfigError) as info:
        parse_policy("color,colour", 3)
    message = str(info.value)
    assert "--augment-policy" in message and "'colour'" in message
    assert all(name in message for name in TRANSFORMS)
    assert isinstance(info.value, UsageError)  # the CLI exits with code 2


@pytest.mark.parametrize("text", ["", " , ", "flip,flip", "color,intensity"])
def test_parse_policy_rejects_empty_and_repeated(text):
    with pytest.raises(ConfigError, match="--augment-policy"):
        parse_policy(text, 1)


@given(
    names=st.lists(st.sampled_from(TRANSFORMS), unique=True, min_size=1),
    channels=st.integers(1, 4),
)
def test_parse_policy_is_idempotent(names, channels):
    once = parse_policy(",".join(names), channels)
    assert parse_policy(",".join(once), channels) == once
    assert len(once) == len(names)
    assert ("color" in once) == ("color" in names and channels == 3)


def test_augment_refuses_color_on_gray_and_string_policies():
    with pytest.raises(ValueError, match="intensity"):
        augment(_images(2, c=1), jax.random.key(0), ("color",), 1.0)
    with pytest.raises(TypeError, match="parse_policy"):
        augment(_images(2), jax.random.key(0), DEFAULT_POLICY, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown transform"):
        augment(_images(2), jax.random.key(0), ("blur",), 1.0)


# ----------------------------------------------------------------------------------------------
# Hand and NumPy values for the deterministic transforms


def test_translate_hand_example():
    x = np.arange(1, 17, dtype=np.float32).reshape(1, 4, 4, 1)
    # Down by 1, left by 2: out[i, j] = x[i - 1, j + 2], 0 where outside.
    expected = np.array(
        [[0, 0, 0, 0], [3, 4, 0, 0], [7, 8, 0, 0], [11, 12, 0, 0]], np.float32
    ).reshape(1, 4, 4, 1)
    got = _translate(jnp.asarray(x), jnp.array([[1, -2]]))
    np.testing.assert_array_equal(got, expected)


def test_translate_matches_np_roll_with_zero_fill():
    x = np.asarray(_images(5))
    shifts = np.array([[0, 0], [2, -1], [-2, 2], [1, 1], [-1, -2]], np.int32)
    got = np.asarray(_translate(jnp.asarray(x), jnp.asarray(shifts)))
    for n, (dy, dx) in enumerate(shifts):
        np.testing.assert_array_equal(got[n], _np_shift(x[n], dy, dx))


def test_cutout_hand_example():
    x = jnp.ones((2, 6, 6, 1))
    # size 3: rows/cols [c - 1, c + 2); centre (0, 0) is clipped to a 2x2 corner.
    got = np.asarray(_cutout(x, jnp.array([[0, 0], [3, 4]]), (3, 3)))[..., 0]
    expected = np.ones((2, 6, 6), np.float32)
    expected[0, 0:2, 0:2] = 0
    expected[1, 2:5, 3:6] = 0
    np.testing.assert_array_equal(got, expected)


def test_color_helpers_match_numpy():
    x = np.asarray(_images(2))
    f = np.array([0.25, 1.75], np.float32)
    np.testing.assert_allclose(
        _brightness(jnp.asarray(x), jnp.asarray(f)), x + f[:, None, None, None]
    )
    m = x.mean(axis=3, keepdims=True)
    np.testing.assert_allclose(
        _saturation(jnp.asarray(x), jnp.asarray(f)), (x - m) * f[:, None, None, None] + m, atol=1e-6
    )
    m = x.mean(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(
        _contrast(jnp.asarray(x), jnp.asarray(f)), (x - m) * f[:, None, None, None] + m, atol=1e-6
    )


def test_rotate_quarter_turn_is_rot90_and_zero_is_identity():
    x = np.asarray(_images(3))
    quarter = _rotate(jnp.asarray(x), jnp.full((3,), math.pi / 2))
    np.testing.assert_allclose(quarter, np.rot90(x, k=1, axes=(1, 2)), atol=1e-5)
    np.testing.assert_allclose(_rotate(jnp.asarray(x), jnp.zeros(3)), x, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# p: identity at 0, everything at 1, about p in between


@pytest.mark.parametrize("policy", [(t,) for t in TRANSFORMS] + [ALL_RGB])
def test_p_zero_is_exact_identity(policy):
    x = _images(len(policy) == 1 and MANY or 8)
    np.testing.assert_array_equal(_aug(x, jax.random.key(3), policy, 0.0), x)


def test_p_one_flip_is_mirror():
    x = _images(MANY)
    np.testing.assert_array_equal(_aug(x, jax.random.key(0), ("flip",), 1.0), x[:, :, ::-1])


@pytest.mark.parametrize("name", ["color", "cutout", "flip", "rotate", "noise"])
def test_p_one_changes_every_image(name):
    x = _images(MANY)
    assert _changed(x, _aug(x, jax.random.key(1), (name,), 1.0)).all()


def _recover_shifts(out: np.ndarray) -> np.ndarray:
    """(N, 2) (dy, dx) of translated coordinate images, checking each against NumPy."""
    src = _coordinates(1)[0]
    shifts = []
    for image in out:
        i, j = np.argwhere(image[..., 0] > 0)[0]
        si, sj = divmod(int(image[i, j, 0]) - 1, W)
        dy, dx = i - si, j - sj
        np.testing.assert_array_equal(image, _np_shift(src, dy, dx))
        shifts.append((dy, dx))
    return np.array(shifts)


def test_p_one_translation_covers_diffaugment_range():
    out = np.asarray(
        _aug(jnp.asarray(_coordinates(1000)), jax.random.key(2), ("translation",), 1.0)
    )
    shifts = _recover_shifts(out)
    r = int(H / 8 + 0.5)
    assert r == 2 and np.abs(shifts).max() == r
    counts = {tuple(s) for s in shifts}
    assert len(counts) == (2 * r + 1) ** 2  # every shift in [-2, 2]^2 occurs
    zero = np.mean(np.all(shifts == 0, axis=1))
    assert abs(zero - 1 / 25) < 0.02  # only the (0, 0) draw leaves an image unchanged


@pytest.mark.parametrize("p", [0.25, 0.5, 0.75])
@pytest.mark.parametrize("name", TRANSFORMS)
def test_fraction_changed_is_p(name, p):
    x = _images(MANY)
    fraction = _changed(x, _aug(x, jax.random.key(4), (name,), p)).mean()
    unchanged_draws = 1 / 25 if name == "translation" else 0.0  # the (0, 0) shift
    assert abs(fraction - p * (1 - unchanged_draws)) < 0.04  # binomial sd is at most 0.011


def test_larger_p_adds_images_without_changing_the_others():
    x = _images(MANY)
    key = jax.random.key(5)
    low = _aug(x, key, ("rotate",), 0.3)
    high = _aug(x, key, ("rotate",), 0.6)
    changed_low, changed_high = _changed(x, low), _changed(x, high)
    assert (changed_low <= changed_high).all() and changed_high.sum() > changed_low.sum()
    np.testing.assert_array_equal(np.asarray(low)[changed_low], np.asarray(high)[changed_low])


# ----------------------------------------------------------------------------------------------
# Same key, same transforms; determinism; key kinds


def test_same_key_same_transforms_for_two_copies():
    x = _images(8)
    key = jax.random.key(6)
    a = _aug(x, key, ALL_RGB, 0.7)
    b = _aug(jnp.array(x), key, ALL_RGB, 0.7)
    np.testing.assert_array_equal(a, b)
    c = _aug(x, jax.random.split(key)[1], ALL_RGB, 0.7)
    assert _changed(a, c).all()  # split keys: independent transforms


def test_same_key_same_transforms_for_different_batches():
    """For a fixed key every transform is affine, f(x) = A x + c with A, c drawn from the key,
    so f(a) - f(b) = f(a - b) - f(0) holds iff a and b got the same A (colour, rotation, ...)."""
    a, b = _images(8, seed=20), _images(8, seed=21)
    zero = jnp.zeros_like(a)

    def gap(key_a, key_b):
        lhs = _aug(a, key_a, ALL_RGB, 0.7) - _aug(b, key_b, ALL_RGB, 0.7)
        rhs = _aug(a - b, key_a, ALL_RGB, 0.7) - _aug(zero, key_a, ALL_RGB, 0.7)
        return np.abs(np.asarray(lhs - rhs)).max(axis=(1, 2, 3))

    key = jax.random.key(8)
    assert gap(key, key).max() < 1e-5
    assert (gap(key, jax.random.split(key)[1]) > 1e-2).all()  # split keys: independent


def test_same_key_moves_the_same_pixels_in_two_batches():
    """Translation, cutout and flip are gathers/masks: read the map off a coordinate batch."""
    n = 64
    coords = jnp.asarray(_coordinates(n))
    other = _images(n, c=1, seed=9)
    key = jax.random.key(7)
    policy = ("translation", "cutout", "flip")
    mapped = np.asarray(_aug(coords, key, policy, 0.7))
    got = np.asarray(_aug(other, key, policy, 0.7))
    source = np.clip(mapped.astype(np.int64) - 1, 0, None).reshape(n, -1)
    expected = np.take_along_axis(np.asarray(other).reshape(n, -1), source, axis=1)
    expected = np.where(mapped > 0, expected.reshape(mapped.shape), 0)
    np.testing.assert_array_equal(got, expected)
    assert 0.5 < _changed(coords, mapped).mean() < 1.0  # some untouched, most moved


def test_deterministic_and_accepts_typed_and_raw_keys():
    x = _images(8)
    typed = _aug(x, jax.random.key(11), ALL_RGB, 0.5)
    np.testing.assert_array_equal(typed, _aug(x, jax.random.key(11), ALL_RGB, 0.5))
    raw = _aug(x, jax.random.PRNGKey(11), ALL_RGB, 0.5)
    np.testing.assert_array_equal(typed, raw)
    assert typed.dtype == jnp.float32 and typed.shape == x.shape


# ----------------------------------------------------------------------------------------------
# Colour vs grayscale/depth


def _affine_fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image, least squares y = a x + b over all pixels and channels: (slopes, residuals)."""
    slopes, residuals = [], []
    for xi, yi in zip(x.reshape(len(x), -1), y.reshape(len(y), -1), strict=True):
        design = np.stack([xi, np.ones_like(xi)], axis=1)
        (a, b), *_ = np.linalg.lstsq(design, yi, rcond=None)
        slopes.append(a)
        residuals.append(np.abs(design @ np.array([a, b]) - yi).max())
    return np.array(slopes), np.array(residuals)


@pytest.mark.parametrize("channels", [1, 2, 4])
def test_non_rgb_color_is_brightness_and_contrast_only(channels):
    """One slope and offset per image for every channel: channel relations are kept."""
    x = np.asarray(_images(64, c=channels))
    policy = parse_policy("color", channels)
    y = np.asarray(_aug(jnp.asarray(x), jax.random.key(12), policy, 1.0))
    slopes, residuals = _affine_fit(x, y)
    assert residuals.max() < 1e-4
    assert slopes.min() >= 0.5 - 1e-4 and slopes.max() < 1.5 + 1e-4
    assert slopes.max() - slopes.min() > 0.5  # contrast does vary
    offsets = (y - x * slopes[:, None, None, None]).mean(axis=(1, 2, 3))
    assert np.ptp(offsets) > 0.3  # and so does brightness


def test_rgb_color_changes_channel_spread():
    """Saturation scales the per-pixel deviation from the channel mean by its own factor."""
    x = np.asarray(_images(64, c=3))
    y = np.asarray(_aug(jnp.asarray(x), jax.random.key(12), ("color",), 1.0))
    _, residuals = _affine_fit(x, y)
    assert (residuals > 1e-2).mean() > 0.9  # not one slope for all channels
    gray_x, gray_y = x.mean(axis=3), y.mean(axis=3)
    contrast, _ = _affine_fit(gray_x, gray_y)
    spread = np.abs(y - gray_y[..., None]).mean(axis=(1, 2, 3)) / np.abs(
        x - gray_x[..., None]
    ).mean(axis=(1, 2, 3))
    saturation = spread / contrast
    assert saturation.min() >= -1e-4 and saturation.max() < 2 + 1e-4
    assert saturation.min() < 0.5 and saturation.max() > 1.5


# ----------------------------------------------------------------------------------------------
# Geometry ranges


def test_cutout_is_one_clipped_half_size_square():
    out = np.asarray(_aug(jnp.ones((200, H, W, 1)), jax.random.key(13), ("cutout",), 1.0))[..., 0]
    for image in out:
        rows = np.flatnonzero((image == 0).any(axis=1))
        cols = np.flatnonzero((image == 0).any(axis=0))
        assert (image == 0).sum() == len(rows) * len(cols)  # a rectangle
        assert np.all(np.diff(rows) == 1) and np.all(np.diff(cols) == 1)
        # size 8, centre in [0, 16]: between 4 and 8 rows/cols stay inside the image
        assert 4 <= len(rows) <= 8 and 4 <= len(cols) <= 8
    assert (out == 0).sum(axis=(1, 2)).max() == 64


def test_rotate_angles_stay_within_ten_degrees():
    x = _images(32, c=1)
    out = _aug(x, jax.random.key(14), ("rotate",), 1.0)
    candidates = np.arange(-15, 16)
    errors = jax.jit(
        jax.vmap(
            lambda d: jnp.abs(_rotate(x, jnp.full((32,), jnp.radians(d))) - out).mean((1, 2, 3))
        )
    )(jnp.asarray(candidates, jnp.float32))
    best = candidates[errors.argmin(axis=0)]
    assert np.abs(best).max() <= 10 and best.min() <= -5 and best.max() >= 5


# ----------------------------------------------------------------------------------------------
# Gradients reach the input


@pytest.mark.parametrize(
    ("policy", "channels"),
    [((t,), 3) for t in TRANSFORMS] + [(DIFFAUGMENT, 3), (parse_policy(DEFAULT_POLICY, 1), 1)],
)
def test_gradients_reach_images(policy, channels):
    """Each transform is affine for a fixed key, so <f(x) - f(0), w> must equal <x, grad>."""
    x = _images(4, c=channels, seed=1)
    w = _images(4, c=channels, seed=2)
    key = jax.random.key(15)

    @jax.jit
    def check(p):
        def loss(images):
            return jnp.vdot(augment(images, key, policy, p), w)

        value, grad = jax.value_and_grad(loss)(x)
        return value - loss(jnp.zeros_like(x)), jnp.vdot(x, grad), grad

    for p in (1.0, 0.5):
        linear_part, predicted, grad = check(p)
        assert np.isfinite(np.asarray(grad)).all() and np.abs(np.asarray(grad)).sum() > 0
        np.testing.assert_allclose(linear_part, predicted, rtol=1e-4, atol=1e-3)


# ----------------------------------------------------------------------------------------------
# Compiles once


def test_jit_compiles_once_for_changing_p_and_key():
    traces = []

    @jax.jit
    def step(images, key, p):
        traces.append(1)  # runs at trace time only
        return augment(images, key, DIFFAUGMENT, p)

    x = _images(4)
    outs = [step(x, jax.random.key(i), jnp.float32(p)) for i, p in enumerate([0.0, 0.3, 1.0])]
    assert len(traces) == 1 and step._cache_size() == 1
    np.testing.assert_array_equal(outs[0], x)

    # jit's cache is shared by every jit of `augment`: count what repeated calls add.
    for as_p in (jnp.float32, float):  # a float32 array, a Python float (weakly typed)
        _aug(x, jax.random.key(0), DIFFAUGMENT, as_p(0.1))
        before = _aug._cache_size()
        for i, q in enumerate((0.2, 0.9)):
            _aug(x, jax.random.key(i + 1), DIFFAUGMENT, as_p(q))
        assert _aug._cache_size() == before


# ----------------------------------------------------------------------------------------------
# ADA


ADA = dict(target=0.6, batch_size=8, interval=4, speed_images=1000)
STEP = np.float32(8 * 4 / 1000)


def test_ada_init():
    state = ada_init()
    assert isinstance(state, AdaState)
    assert float(state.p) == 0.0 and state.p.dtype == jnp.float32
    assert int(state.signal_count) == 0 and float(state.signal_sum) == 0.0
    assert float(ada_init(0.25).p) == 0.25
    with pytest.raises(ValueError):
        ada_init(1.5)


def test_ada_observe_accumulates_mean_sign():
    margin = jnp.array([[1.0, -2.0], [3.0, 0.0]])  # signs 1, -1, 1, 0: mean 0.25
    state = ada_observe(ada_observe(ada_init(), margin), -margin)
    assert float(state.signal_sum) == 0.0 and int(state.signal_count) == 2
    state = ada_observe(ada_init(), margin)
    assert float(state.signal_sum) == 0.25 and float(state.p) == 0.0


@pytest.mark.parametrize(
    ("signs", "expected"),
    [
        ([1, 1, 1, -1], np.float32(0.5) + STEP),  # r = 0.75 > 0.6: up
        ([1, 1, 1, 1], np.float32(0.5) + STEP),  # r = 1.0: up by the same step
        ([1, -1, 1, -1], np.float32(0.5) - STEP),  # r = 0.5 < 0.6: down
        ([-1, -1, -1, -1], np.float32(0.5) - STEP),  # r = 0.0: down by the same step
    ],
)
def test_ada_adjusts_every_interval_by_exact_step(signs, expected):
    """Each call observes margins [1, 1, s, s]: mean sign (2 + 2 s) / 4, i.e. 1 or 0."""
    state = ada_init(0.5)
    adjust = jax.jit(lambda s: ada_adjust(s, **ADA))
    per_call = []
    for call, sign in enumerate(signs):
        margin = jnp.array([1.0, 1.0, sign, sign])  # mean sign: (2 + 2 sign) / 4
        per_call.append((2 + 2 * sign) / 4)
        state = adjust(ada_observe(state, margin))
        if call < 3:
            assert float(state.p) == 0.5 and int(state.signal_count) == call + 1
    r = np.mean(per_call)
    assert float(state.signal) == pytest.approx(r)
    assert float(state.p) == expected and (r > 0.6) == (expected > 0.5)
    assert int(state.signal_count) == 0 and float(state.signal_sum) == 0.0


def test_ada_holds_p_when_signal_equals_target():
    state = ada_init(0.5)
    for _ in range(4):
        state = ada_adjust(
            ada_observe(state, jnp.array([1.0, 1.0, 1.0, -1.0])), **{**ADA, "target": 0.5}
        )
    assert float(state.p) == 0.5 and float(state.signal) == 0.5


def _run(state: AdaState, signals: jax.Array, **config) -> tuple[AdaState, jax.Array]:
    def body(s, signal):
        s = ada_adjust(ada_observe(s, signal), **config)
        return s, s.p

    return jax.lax.scan(body, state, signals)


def test_ada_p_stays_in_unit_interval_under_long_runs():
    fast = dict(target=0.6, batch_size=10, interval=4, speed_images=800)  # step 0.05
    up, ps_up = jax.jit(lambda s: _run(s, jnp.ones(400), **fast))(ada_init())
    down, ps_down = jax.jit(lambda s: _run(s, -jnp.ones(400), **fast))(up)
    ps = np.concatenate([ps_up, ps_down])
    assert ps.min() >= 0.0 and ps.max() <= 1.0
    assert float(up.p) == 1.0 and float(down.p) == 0.0
    assert np.all(np.diff(np.asarray(ps_up)) >= 0) and np.all(np.diff(np.asarray(ps_down)) <= 0)
    assert np.count_nonzero(np.diff(np.asarray(ps_up))) == 20  # 1 / 0.05 adjustments, every 4th


def test_ada_finds_the_p_that_stops_a_synthetic_overfitting_signal():
    """E[sign] = 0.9 - 0.6 p (augmentation reduces overfitting): p should settle near 0.5."""
    config = dict(target=0.6, batch_size=16, interval=4, speed_images=3200)  # step 0.02

    def body(carry, key):
        state = carry
        rate = 0.9 - 0.6 * state.p
        positive = jax.random.uniform(key, (16,)) < (1 + rate) / 2
        state = ada_adjust(ada_observe(state, jnp.where(positive, 1.0, -1.0)), **config)
        return state, state.p

    keys = jax.random.split(jax.random.key(16), 4000)
    final, ps = jax.jit(lambda s: jax.lax.scan(body, s, keys))(ada_init())
    ps = np.asarray(ps)
    assert ps[:200].max() > 0.1  # moves up from 0 while D overfits
    assert abs(ps[2000:].mean() - 0.5) < 0.1 and 0.0 <= ps.min() and ps.max() <= 1.0


def test_ada_adjust_rejects_bad_settings():
    with pytest.raises(ValueError, match="interval"):
        ada_adjust(ada_init(), target=0.6, batch_size=8, interval=0, speed_images=1000)
    with pytest.raises(ValueError, match="speed_images"):
        ada_adjust(ada_init(), target=0.6, batch_size=8, interval=4, speed_images=0)
