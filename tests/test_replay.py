"""The history buffer fills, samples only written slots and replaces exactly b/2 per step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refinekit.training import replay


def _images(n, value):
    return jnp.full((n, 2, 2, 1), float(value))


def test_buffer_fills_by_appending_then_replaces_exactly_n_slots():
    buffer = replay.init(8, (2, 2, 1))
    key = jax.random.key(0)
    for i in range(4):  # 4 adds of 2 fill a capacity of 8 exactly
        buffer = replay.add(buffer, _images(2, i + 1), jax.random.fold_in(key, i))
        assert int(buffer.count) == 2 * (i + 1)
    values = np.asarray(buffer.images[:, 0, 0, 0])
    np.testing.assert_array_equal(values, [1, 1, 2, 2, 3, 3, 4, 4])
    before = np.asarray(buffer.images)
    buffer = replay.add(buffer, _images(2, 9), jax.random.fold_in(key, 99))
    changed = np.flatnonzero(np.any(np.asarray(buffer.images) != before, axis=(1, 2, 3)))
    assert len(changed) == 2  # exactly b/2 distinct slots replaced
    assert int(buffer.count) == 8


def test_sample_only_returns_written_slots():
    buffer = replay.init(16, (2, 2, 1))
    buffer = replay.add(buffer, _images(4, 5), jax.random.key(1))
    drawn = replay.sample(buffer, 64, jax.random.key(2))
    np.testing.assert_array_equal(
        np.unique(np.asarray(drawn)), [5.0]
    )  # never an unwritten zero slot
    assert not bool(replay.can_sample(replay.init(16, (2, 2, 1)), 4))
    assert bool(replay.can_sample(buffer, 4))


def test_capacity_must_be_a_multiple_of_the_add_size():
    with pytest.raises(ValueError, match="multiple"):
        replay.add(replay.init(7, (1, 1, 1)), _images(2, 1), jax.random.key(0))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), st.integers(1, 20), st.integers(0, 2**31 - 1))
@pytest.mark.slow
def test_buffer_properties(n, multiple, adds, seed):
    """Count never exceeds capacity; every add changes exactly n slots once full; samples are written values."""
    capacity = n * multiple
    buffer = replay.init(capacity, (1, 1, 1))
    add = jax.jit(replay.add)
    key = jax.random.key(seed)
    for i in range(adds):
        before = np.asarray(buffer.images).ravel().copy()
        buffer = add(buffer, jnp.full((n, 1, 1, 1), float(i + 1)), jax.random.fold_in(key, i))
        after = np.asarray(buffer.images).ravel()
        assert int(buffer.count) == min((i + 1) * n, capacity)
        assert int(np.sum(after == i + 1)) == n  # the n new images are all stored
        assert int(np.sum(before != after)) == n
    drawn = np.asarray(replay.sample(buffer, 32, jax.random.fold_in(key, 1000))).ravel()
    written = np.asarray(buffer.images).ravel()[: int(buffer.count)]
    assert set(drawn.tolist()) <= set(written.tolist())
    assert 0 not in set(drawn.tolist())
