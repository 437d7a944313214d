"""The domain classifier: a small CNN telling a set from real, with held-out folds (also the
label retention classifier's network, retention.py). Train-on-X, test-on-real accuracy is the
downstream score's CNN instead (refinekit.downstream), the judge train chooses with.

Inputs larger than INPUT_SIZE are rearranged by space-to-depth (no pixel is lost). The
network: three stride-2 3x3 convolutions (16, 32, 64 channels) with ReLUs, then a linear head
on the spatial mean and on the means of a GRID x GRID grid of cells. The cells make it see
where a feature is: a warp about a point (a swirl) bends edges one way on one side and the
other way on the other, which a mean over the whole image cancels. Adam, a fixed number of steps, fixed-size batches drawn by a seeded NumPy
generator; the step is one jitted function (NNX split once, merge inside), compiled once per
input shape and number of classes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np

from ..io.pixels import pad_to_batch
from . import memo

INPUT_SIZE = 32
WIDTHS = (16, 32, 64)
GRID = 4  # cells per side of the position-aware pooling
BATCH = 64
PREDICT_BATCH = 256
LEARNING_RATE = 3e-3
FOLDS = 3
# Early stopping (domain classifier): a fifth of each training fold is held out for validation.
VALIDATION_FRACTION = 0.2
MAX_EPOCHS = 60
MIN_EARLY_STEPS = 200
MAX_EARLY_STEPS = 600
EVALUATE_EVERY = 50  # steps between validation checks
MAX_VALIDATION = 512  # images scored per check
SEPARATED = 0.01  # validation loss below which the sets count as told apart: stop
PATIENCE = 4  # evaluations without a lower validation loss
DESCRIPTION = (
    f"CNN of three stride-2 3x3 convolutions ({', '.join(map(str, WIDTHS))} channels, ReLU), "
    f"linear head on the spatial mean and {GRID}x{GRID} cell means; input: the image and 1/2 + 2 (image - 3x3 box blur); inputs "
    f"above {INPUT_SIZE}x{INPUT_SIZE} rearranged by space-to-depth (lossless); "
    f"Adam (lr {LEARNING_RATE}), batch {BATCH}; domain classifier: {FOLDS} held-out folds, "
    f"each trained up to min({MAX_EPOCHS} epochs, {MAX_EARLY_STEPS} steps) with early stopping "
    f"on a {VALIDATION_FRACTION:.0%} validation split of its training part (best validation "
    f"loss kept, evaluated every {EVALUATE_EVERY} steps, patience {PATIENCE}, stop below "
    f"{SEPARATED})"
)


def classifier_inputs(images: np.ndarray) -> np.ndarray:
    """NxHxWxC -> N x H/f x W/f x 2C*f*f: each image with its high-pass copy (see
    _with_high_pass: it makes grain, blur and sharpness easy to learn from few images), then
    space-to-depth by f, the smallest factor reaching INPUT_SIZE.

    Unlike downsampling this loses nothing (fine grain and refiner artifacts stay visible to
    the classifier) while its convolutions run at INPUT_SIZE. Sides that are not multiples of
    f are padded by repeating the edge pixels.
    """
    images = _with_high_pass(images)
    n, height, width, channels = images.shape
    f = -(-max(height, width) // INPUT_SIZE)
    if f == 1:
        return images
    pad_h, pad_w = -height % f, -width % f
    if pad_h or pad_w:
        images = np.pad(images, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        height, width = height + pad_h, width + pad_w
    blocks = images.reshape(n, height // f, f, width // f, f, channels)
    return np.ascontiguousarray(blocks.transpose(0, 1, 3, 2, 4, 5)).reshape(
        n, height // f, width // f, f * f * channels
    )


def _with_high_pass(images: np.ndarray) -> np.ndarray:
    """Append 1/2 + 2 (x - 3x3 box blur of x): grain, sharpness and edges, centred in [0, 1]."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = images.shape[1:3]
    blur = sum(padded[:, i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9.0
    # float16 halves the memory and the per-step batch copies; the network computes in float32.
    return np.concatenate([images, 0.5 + 2.0 * (images - blur)], axis=-1).astype(np.float16)


@lru_cache(maxsize=8)
def _functions(channels: int, classes: int) -> tuple[Callable, Callable, Callable]:
    """(init(seed) -> (params, opt_state), step, predict), jitted once per (channels, classes)."""
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    class SmallCNN(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            convs, features = [], channels
            for width in WIDTHS:
                convs.append(
                    nnx.Conv(features, width, (3, 3), strides=(2, 2), padding="SAME", rngs=rngs)
                )
                features = width
            self.convs = nnx.List(convs)
            self.head = nnx.Linear(features * (1 + GRID * GRID), classes, rngs=rngs)

        def __call__(self, x):
            x = x.astype(jnp.float32) * 2.0 - 1.0
            for conv in self.convs:
                x = jax.nn.relu(conv(x))
            n, _, _, width = x.shape
            # area means over the cells (antialiased resize); a map under GRID is repeated
            cells = jax.image.resize(x, (n, GRID, GRID, width), "linear").reshape(n, -1)
            return self.head(jnp.concatenate([jnp.mean(x, axis=(1, 2)), cells], axis=-1))

    graphdef, _ = nnx.split(nnx.eval_shape(lambda: SmallCNN(nnx.Rngs(0))))
    optimizer = optax.adam(LEARNING_RATE)

    def init(seed: int, stream: int):
        key = jax.random.fold_in(jax.random.key(seed), stream)
        _, params = nnx.split(SmallCNN(nnx.Rngs(key)))
        return params, optimizer.init(params)

    def loss(params, x, y):
        logits = nnx.merge(graphdef, params)(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def step(params, opt_state, x, y):
        value, grads = jax.value_and_grad(loss)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    @jax.jit
    def predict(params, x):
        return nnx.merge(graphdef, params)(x)

    return init, step, predict


def train_early_stopping(
    images: np.ndarray,
    labels: np.ndarray,
    classes: int,
    seed: int,
    stream: int = 0,
    on_step: Callable[[], None] | None = None,
    groups: np.ndarray | None = None,
) -> Trained:
    """Train with a held-out validation split; keep the parameters of the lowest validation
    loss, checked every EVALUATE_EVERY steps; stop after PATIENCE checks without improvement,
    or once the validation loss is below SEPARATED. Deterministic for (seed, stream).

    groups: int (N,), images of one group (e.g. an image and its variants) fall on one side of
    the validation split; None: every image is its own group."""
    channels = images.shape[-1]
    init, step, predict = _functions(channels, classes)
    params, opt_state = init(seed, stream)
    rng = np.random.default_rng([seed, 8, stream])
    if groups is None:
        order = rng.permutation(len(images))
        n_val = max(2, int(round(VALIDATION_FRACTION * len(images))))
        val, fit = order[:n_val], order[n_val:]
    else:
        ids, group_of = np.unique(groups, return_inverse=True)
        n_val = max(2, int(round(VALIDATION_FRACTION * len(ids))))
        held = np.isin(group_of, rng.permutation(len(ids))[:n_val])
        val, fit = rng.permutation(np.flatnonzero(held)), np.flatnonzero(~held)
    val = val[:MAX_VALIDATION]  # the checks' cost; the rest of the split still stays unseen
    labels = labels.astype(np.int32)
    check = EVALUATE_EVERY
    budget = early_steps(len(images))
    batches = _index_stream(len(fit), rng)
    best, best_loss, waited, done = params, np.inf, 0, 0
    while done < budget:
        for _ in range(min(check, budget - done)):
            idx = fit[next(batches)]
            params, opt_state, _ = step(params, opt_state, images[idx], labels[idx])
            if on_step is not None:
                on_step()
        done += min(check, budget - done)
        out = logits(Trained(params, channels, classes), images[val])
        loss = _cross_entropy(out, labels[val])
        if done < MIN_EARLY_STEPS:  # too early to judge: a small validation split is noisy
            best = params
        elif loss < best_loss - 2e-3:  # smaller gains are noise on a real-vs-real split
            best, best_loss, waited = params, loss, 0
        else:
            waited += 1
        if done >= MIN_EARLY_STEPS and (waited >= PATIENCE or best_loss < SEPARATED):
            break
    if on_step is not None:
        for _ in range(budget - done):
            on_step()
    return Trained(best, channels, classes)


def _cross_entropy(logit: np.ndarray, labels: np.ndarray) -> float:
    top = logit.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(logit - top).sum(axis=1))
    return float(np.mean(log_norm - logit[np.arange(len(labels)), labels]))


def early_steps(n_train: int) -> int:
    """The step budget of train_early_stopping for n_train images (validation included)."""
    fit = n_train - max(2, int(round(VALIDATION_FRACTION * n_train)))
    epoch = max(1, math.ceil(fit / BATCH))
    return max(MIN_EARLY_STEPS, min(MAX_EPOCHS * epoch, MAX_EARLY_STEPS))


@dataclass(frozen=True)
class Trained:
    params: object
    channels: int
    classes: int


def _index_stream(n: int, rng: np.random.Generator):
    """Endless fixed-size batches of indices, walking through a fresh permutation per epoch."""
    if n <= 0:
        raise ValueError("a classifier needs at least one training image")
    buffer = np.empty(0, np.int64)
    while True:
        while len(buffer) < BATCH:
            buffer = np.concatenate([buffer, rng.permutation(n)])
        yield buffer[:BATCH]
        buffer = buffer[BATCH:]


def logits(model: Trained, images: np.ndarray) -> np.ndarray:
    """(N, classes) float64 logits; fixed-size batches (last one padded), so one compile."""
    _, _, predict = _functions(model.channels, model.classes)
    out = np.empty((len(images), model.classes))
    for start in range(0, len(images), PREDICT_BATCH):
        batch = images[start : start + PREDICT_BATCH]
        real = len(batch)
        padded = pad_to_batch(batch, PREDICT_BATCH)
        out[start : start + real] = np.asarray(predict(model.params, padded))[:real]
    return out


@dataclass(frozen=True)
class HeldOut:
    """Held-out domain scores: which images of each set took part, and their scores."""

    index_x: np.ndarray  # indices into the compared set
    scores_x: np.ndarray  # logit("set") - logit("real"); > 0 = judged "set"
    index_ref: np.ndarray  # indices into the real reference
    scores_ref: np.ndarray


def domain_scores(
    x: np.ndarray,
    ref: np.ndarray,
    seed: int,
    folds: int = FOLDS,
    on_step: Callable[[], None] | None = None,
) -> HeldOut:
    """k-fold held-out scores of "x vs real reference" classifiers.

    Both sets are subsampled to the smaller one's size (balanced classes); each fold is
    held out once from a classifier trained on the others. Subsamples, folds, batches and
    initialisations depend only on the seed and set sizes, so identical sets give identical
    scores; within one process they are trained once (_DOMAIN_CACHE).
    """
    key = memo.digest(x, ref, salt=(seed, folds, DESCRIPTION))
    if key in _DOMAIN_CACHE:
        if on_step is not None:  # a progress bar still reaches its total
            for _ in range(domain_steps(len(x), len(ref), folds)):
                on_step()
        return _copy(_DOMAIN_CACHE[key])
    held = _train_domain_folds(x, ref, seed, folds, on_step)
    memo.remember(_DOMAIN_CACHE, key, _copy(held), _DOMAIN_CACHE_SIZE)
    return held


# Held-out scores by a digest of their inputs. Training is deterministic for given inputs, so
# a report that compares the same synthetic or real sets again in this process (several
# refined sets or checkpoints scored one after the other, from Python) trains their
# classifiers once. The entries are small: indices and one score per image.
_DOMAIN_CACHE: dict[str, HeldOut] = {}
_DOMAIN_CACHE_SIZE = 8


def clear_domain_cache() -> None:
    """Forget cached domain scores (tests that check training itself is deterministic)."""
    _DOMAIN_CACHE.clear()


def _copy(held: HeldOut) -> HeldOut:
    return HeldOut(*(np.array(getattr(held, f.name)) for f in fields(held)))


def _train_domain_folds(
    x: np.ndarray,
    ref: np.ndarray,
    seed: int,
    folds: int,
    on_step: Callable[[], None] | None,
) -> HeldOut:
    m = min(len(x), len(ref))
    index_x = np.sort(np.random.default_rng([seed, 1]).permutation(len(x))[:m])
    index_ref = np.sort(np.random.default_rng([seed, 2]).permutation(len(ref))[:m])
    fold_of = np.random.default_rng([seed, 3]).permutation(m) % folds
    scores_x, scores_ref = np.empty(m), np.empty(m)
    for fold in range(folds):
        train_mask, test_mask = fold_of != fold, fold_of == fold
        images = np.concatenate([x[index_x[train_mask]], ref[index_ref[train_mask]]])
        labels = np.concatenate([np.ones(train_mask.sum()), np.zeros(train_mask.sum())])
        model = train_early_stopping(images, labels, 2, seed, fold, on_step)
        for index, scores, source in ((index_x, scores_x, x), (index_ref, scores_ref, ref)):
            out = logits(model, source[index[test_mask]])
            scores[test_mask] = out[:, 1] - out[:, 0]
    return HeldOut(index_x, scores_x, index_ref, scores_ref)


def domain_steps(n_x: int, n_ref: int, folds: int = FOLDS) -> int:
    m = min(n_x, n_ref)
    return sum(early_steps(2 * int(((np.arange(m) % folds) != f).sum())) for f in range(folds))
