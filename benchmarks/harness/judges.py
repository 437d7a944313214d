"""Independent judges (evaluation only): an RBF SVM and an MLP on raw pixels (scikit-learn),
and a small CNN (JAX; its own code, not refinekit's classifier), trained with CNN_SEEDS seeds
and reported as their mean, with the seeds' scores beside it: users train convnets, and pixel
judges can disagree with them.

Two scores:
- label retention: k-fold over the synthetic set; a judge trained on the other folds' synthetic
  images predicts the refined versions of the held-out fold (and, for reference, the held-out
  synthetic images themselves). Retention 1.0 means every refined image still shows its class.
- train on X, test on real: a judge trained on a labelled set X (raw synthetic, refined, oracle,
  real) is scored on the real `val` and `test` splits.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits

JUDGES = ("svm", "mlp", "cnn")
RETENTION_JUDGES = ("svm", "mlp")  # the CNN's 5-fold retention would cost minutes per set
CNN_SEEDS = (0, 1, 2)
CNN_EPOCHS = 20


def make_judge(name: str, seed: int = 0):
    if name == "svm":
        return SVC(kernel="rbf", C=10.0, gamma="scale")
    if name == "mlp":
        return MLPClassifier(hidden_layer_sizes=(256,), alpha=1e-3, max_iter=200, random_state=seed)
    raise ValueError(f"unknown judge {name!r}; expected one of {JUDGES}")


def fit(name: str, x: np.ndarray, y: np.ndarray, seed: int = 0, shape=None):
    if name == "cnn":
        return SmallCNN(shape, seed).fit(x, y)
    judge = make_judge(name, seed)
    # one BLAS thread: on a shared 2-core machine more threads made the MLP 5-15x slower
    with warnings.catch_warnings(), threadpool_limits(1):
        # max_iter bounds the MLP's time; stopping before convergence is intended
        warnings.simplefilter("ignore", ConvergenceWarning)
        judge.fit(x, y)
    return judge


def predict(judge, x: np.ndarray) -> np.ndarray:
    if isinstance(judge, SmallCNN):
        return judge.predict(x)
    with threadpool_limits(1):
        return judge.predict(x)


def accuracy(judge, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(predict(judge, x) == y))


def photometric(x: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Random appearance changes (gain/offset per channel, blur, noise) of (N, D) images of
    `shape` (H, W, C): trained on these, the retention judge reads the class, not the look."""
    from scipy import ndimage

    n = len(x)
    img = x.reshape(n, *shape)
    c = shape[-1]
    gain = rng.uniform(0.35, 1.2, (n, 1, 1, 1)) * rng.uniform(0.8, 1.2, (n, 1, 1, c))
    offset = rng.uniform(-0.1, 0.45, (n, 1, 1, 1))
    img = img * gain + offset
    sigma = rng.uniform(0.0, 1.4, n)
    img = np.stack(
        [ndimage.gaussian_filter(im, (s, s, 0)) for im, s in zip(img, sigma, strict=True)]
    )
    img = img + rng.normal(0, 1, img.shape) * rng.uniform(0.0, 0.1, (n, 1, 1, 1))
    return np.clip(img, 0, 1).reshape(n, -1).astype(np.float32)


def retention(
    name: str,
    synthetic: np.ndarray,
    refined: np.ndarray,
    y: np.ndarray,
    shape: tuple[int, ...],
    folds: int = 5,
) -> dict:
    """{'refined': fraction of held-out refined images predicted as their class,
    'synthetic': the same for the held-out synthetic images (the judge's own ceiling)}.

    synthetic and refined are aligned (N, D) arrays: row i of refined is R(row i of synthetic).
    The judge trains on each synthetic image and one photometric variant of it, so a refined
    image that only looks more real (contrast, blur, noise) still counts as retained.
    """
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    hits_ref = hits_syn = 0
    for train_idx, held_idx in splitter.split(synthetic, y):
        rng = np.random.default_rng(len(held_idx))
        x_train = synthetic[train_idx]
        x_train = np.concatenate([x_train, photometric(x_train, shape, rng)])
        judge = fit(name, x_train, np.concatenate([y[train_idx], y[train_idx]]), shape=shape)
        hits_ref += int(np.sum(predict(judge, refined[held_idx]) == y[held_idx]))
        hits_syn += int(np.sum(predict(judge, synthetic[held_idx]) == y[held_idx]))
    return {"refined": hits_ref / len(y), "synthetic": hits_syn / len(y)}


def train_on(name: str, x, y, evals: dict[str, tuple[np.ndarray, np.ndarray]], shape=None) -> dict:
    """Accuracy on each named real split of a judge trained on (x, y); the CNN's is the mean
    over CNN_SEEDS, with each seed's under "<split>_seeds"."""
    if name != "cnn":
        judge = fit(name, x, y)
        return {split: accuracy(judge, ex, ey) for split, (ex, ey) in evals.items()}
    runs = [fit(name, x, y, seed, shape) for seed in CNN_SEEDS]
    out: dict = {}
    for split, (ex, ey) in evals.items():
        scores = [accuracy(judge, ex, ey) for judge in runs]
        out[split] = float(np.mean(scores))
        out[f"{split}_seeds"] = scores
    return out


class SmallCNN:
    """conv 3x3 32 - max-pool 2 - conv 3x3 64 - max-pool 2 - dense 128 - dense classes, Adam
    1e-3, batch 64, CNN_EPOCHS epochs; inputs (N, D) in [0, 1] reshaped to `shape`."""

    def __init__(self, shape, seed: int):
        if shape is None:
            raise ValueError("the cnn judge needs the image shape")
        self.shape, self.seed = tuple(shape), seed

    def fit(self, x: np.ndarray, y: np.ndarray) -> SmallCNN:
        import jax
        import jax.numpy as jnp
        import optax
        from flax import nnx

        h, w, c = self.shape
        classes = int(y.max()) + 1
        rngs = nnx.Rngs(self.seed)

        class Net(nnx.Module):
            def __init__(self):
                self.c1 = nnx.Conv(c, 32, (3, 3), rngs=rngs)
                self.c2 = nnx.Conv(32, 64, (3, 3), rngs=rngs)
                self.d1 = nnx.Linear((h // 4) * (w // 4) * 64, 128, rngs=rngs)
                self.d2 = nnx.Linear(128, classes, rngs=rngs)

            def __call__(self, v):
                v = nnx.max_pool(jax.nn.relu(self.c1(v)), (2, 2), (2, 2))
                v = nnx.max_pool(jax.nn.relu(self.c2(v)), (2, 2), (2, 2))
                v = jax.nn.relu(self.d1(v.reshape(v.shape[0], -1)))
                return self.d2(v)

        graph, params = nnx.split(Net(), nnx.Param)
        opt = optax.adam(1e-3)
        opt_state = opt.init(params)

        @jax.jit
        def step(params, opt_state, xb, yb):
            def loss(p):
                logits = nnx.merge(graph, p)(xb)
                return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

            grads = jax.grad(loss)(params)
            updates, opt_state = opt.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        images = jnp.asarray(x.reshape(-1, h, w, c), jnp.float32)
        labels = jnp.asarray(y, jnp.int32)
        rng = np.random.default_rng(self.seed)
        batch = 64
        for _ in range(CNN_EPOCHS):
            order = rng.permutation(len(y))
            for start in range(0, len(y) - batch + 1, batch):
                idx = order[start : start + batch]
                params, opt_state = step(params, opt_state, images[idx], labels[idx])
        self._predict = jax.jit(lambda p, v: jnp.argmax(nnx.merge(graph, p)(v), axis=-1))
        self._params = params
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        h, w, c = self.shape
        images = np.asarray(x, np.float32).reshape(-1, h, w, c)
        out = [
            np.asarray(self._predict(self._params, images[i : i + 512]))
            for i in range(0, len(images), 512)
        ]
        return np.concatenate(out)
