"""A small convnet classifier in JAX, for evaluation only: conv 3x3 16 - max-pool 2 - conv 3x3 32
- max-pool 2 - dense 64 - dense classes, Adam 2e-3, batch 64, a fixed number of epochs.

Users train convnets, and pixel classifiers can disagree with them about what refinement did
(a change of texture costs a pixel SVM points while a CNN gains), so the downstream score is a
CNN's. It is kept small because every checkpoint is scored with three of them. Images larger than MAX_SIDE are resized down first: the score is a comparison between
training sets, and a 32-pixel view keeps it to seconds on a CPU.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

MAX_SIDE = 32
BATCH = 64
LEARNING_RATE = 2e-3
DESCRIPTION = (
    "CNN conv 3x3 16 - max-pool 2 - conv 3x3 32 - max-pool 2 - dense 64 - dense classes; "
    f"images resized to at most {MAX_SIDE} px, standardised per channel by the training set; "
    f"Adam (lr {LEARNING_RATE}), batch {BATCH}"
)


class SmallCNN(nnx.Module):
    def __init__(self, shape: tuple[int, int, int], classes: int, rngs: nnx.Rngs):
        h, w, c = shape
        self.c1 = nnx.Conv(c, 16, (3, 3), rngs=rngs)
        self.c2 = nnx.Conv(16, 32, (3, 3), rngs=rngs)
        self.d1 = nnx.Linear(max(h // 4, 1) * max(w // 4, 1) * 32, 64, rngs=rngs)
        self.d2 = nnx.Linear(64, classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = _pool(jax.nn.relu(self.c1(x)))
        x = _pool(jax.nn.relu(self.c2(x)))
        x = jax.nn.relu(self.d1(x.reshape(x.shape[0], -1)))
        return self.d2(x)


def _pool(x: jax.Array) -> jax.Array:
    if x.shape[1] < 2 or x.shape[2] < 2:
        return x
    return nnx.max_pool(x, (2, 2), (2, 2))


def prepare(images: np.ndarray) -> np.ndarray:
    """float32 NHWC, resized so the longer side is at most MAX_SIDE (unchanged when it is)."""
    x = np.asarray(images, np.float32)
    n, h, w, c = x.shape
    scale = MAX_SIDE / max(h, w)
    if scale < 1.0:
        size = (max(int(round(h * scale)), 4), max(int(round(w * scale)), 4))
        x = np.asarray(
            jax.image.resize(jnp.asarray(x), (n, *size, c), "linear", antialias=True), np.float32
        )
    return x


def train_and_predict(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    classes: int,
    seed: int,
    epochs: int,
) -> np.ndarray:
    """Fit on (train_x, train_y) from `seed`; int (n_test,) predicted classes for test_x.
    Images as `prepare` returns them."""
    shape = tuple(int(s) for s in train_x.shape[1:])
    _, params = nnx.split(SmallCNN(shape, classes, nnx.Rngs(seed)), nnx.Param)  # type: ignore[arg-type]
    opt, step, predict = _compiled(shape, classes)
    opt_state = opt.init(params)
    images = jnp.asarray(train_x)
    labels = jnp.asarray(train_y, jnp.int32)
    batch = min(BATCH, len(train_y))
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(train_y))
        for start in range(0, len(train_y) - batch + 1, batch):
            idx = jnp.asarray(order[start : start + batch])
            params, opt_state = step(params, opt_state, images[idx], labels[idx])
    out = [
        np.asarray(predict(params, jnp.asarray(test_x[i : i + 512])))
        for i in range(0, len(test_x), 512)
    ]
    return np.concatenate(out) if out else np.zeros(0, np.int64)


@functools.lru_cache(maxsize=8)
def _compiled(shape: tuple[int, ...], classes: int):
    """(optimiser, jitted step, jitted predict) for one input shape and class count, built once
    per process: every seed and every candidate of a run reuses the same compiled programs."""
    graph, _ = nnx.split(SmallCNN(shape, classes, nnx.Rngs(0)), nnx.Param)  # type: ignore[arg-type]
    opt = optax.adam(LEARNING_RATE)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(params, opt_state, xb, yb):
        def loss(p):
            logits = nnx.merge(graph, p)(xb)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        grads = jax.grad(loss)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    predict = jax.jit(lambda p, v: jnp.argmax(nnx.merge(graph, p)(v), axis=-1))
    return opt, step, predict
