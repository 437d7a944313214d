"""The frozen label classifier C of the label-consistency loss (CyCADA's semantic loss).

C is trained on the synthetic images and their folder classes in its own phase, before step 0
of a fresh run (outside the global step counter, so phases and step numbers do not move), then
frozen: it lives in `TrainState.extras["classifier"]`, is saved in every checkpoint, and only
the refiner is differentiated through it. The refiner's loss gains
`lambda_label * KL(C(aug(x)) || C(aug(R(x))))` (`--label-target class`: `CE(C(aug(R(x))), y)`).

So that C reads shapes rather than pixel-exact patterns a refiner could learn to imprint, C is
trained on augmented images (shift, contrast/brightness, blur, noise: `augment_for_classifier`)
and the refined images are augmented the same way before C judges them; the L1 content term
stays on beside it.

Network: conv 3x3 (32) stride 1, then stride-2 3x3 convs (64 channels) until the map is at
most 4 pixels on its short side (at least two), ReLUs, spatial mean, linear head.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from ...io.pixels import pad_to_batch, to_model_range
from .. import losses

BATCH = 64
LEARNING_RATE = 2e-3
WIDTH = 64


class LabelClassifier(nnx.Module):
    """(N, H, W, C) images in [-1, 1] -> (N, classes) logits."""

    def __init__(self, channels: int, classes: int, size: tuple[int, int], *, rngs: nnx.Rngs):
        strided = max(2, math.ceil(math.log2(max(min(size) / 4, 1))))
        convs = [nnx.Conv(channels, WIDTH // 2, (3, 3), padding="SAME", rngs=rngs)]
        features = WIDTH // 2
        for _ in range(strided):
            convs.append(
                nnx.Conv(features, WIDTH, (3, 3), strides=(2, 2), padding="SAME", rngs=rngs)
            )
            features = WIDTH
        self.convs = nnx.List(convs)
        self.head = nnx.Linear(features, classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        for conv in self.convs:
            x = jax.nn.relu(conv(x))
        return self.head(x.mean(axis=(1, 2)))


def augment_for_classifier(images: jax.Array, key: jax.Array) -> jax.Array:
    """Random per-image shift (up to 1/8 of the side, edges replicated), contrast x[0.6, 1.4]
    and brightness +-0.2 about the image mean, a 3x3 blur mixed in at a random weight, and
    Gaussian noise of sigma up to 0.15 (model range [-1, 1]). images: (N, H, W, C)."""
    n, h, w, _ = images.shape
    k_shift, k_con, k_bri, k_blur, k_sig, k_noise = jax.random.split(key, 6)
    pad = max(1, min(h, w) // 8)
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    offsets = jax.random.randint(k_shift, (n, 2), 0, 2 * pad + 1)

    def crop(image, offset):
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, image.shape[-1]))

    x = jax.vmap(crop)(padded, offsets)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    contrast = jax.random.uniform(k_con, (n, 1, 1, 1), minval=0.6, maxval=1.4)
    brightness = jax.random.uniform(k_bri, (n, 1, 1, 1), minval=-0.2, maxval=0.2)
    x = (x - mean) * contrast + mean + brightness
    blurred = losses.lowpass(x, sigma=0.8)
    mix = jax.random.uniform(k_blur, (n, 1, 1, 1))
    x = x + mix * (blurred - x)
    sigma = jax.random.uniform(k_sig, (n, 1, 1, 1), maxval=0.15)
    return x + sigma * jax.random.normal(k_noise, x.shape)


class ClassifierFunctions:
    """C's graph (static), its initial parameters, and its jitted training step."""

    def __init__(
        self, channels: int, classes: int, size: tuple[int, int], seed: int, steps: int = 1000
    ):
        model = LabelClassifier(channels, classes, size, rngs=nnx.Rngs(seed + 7919))
        self.graph, self.init_params = nnx.split(model, nnx.Param)
        self.classes = classes
        # Cosine decay to 0 over the phase: converges in fewer steps than a constant rate.
        self.optimizer = optax.adam(optax.cosine_decay_schedule(LEARNING_RATE, max(steps, 1)))
        self.trace_count = 0
        self.train_step = jax.jit(self._train_step, donate_argnums=(0, 1))
        self.predict = jax.jit(self.apply)

    def apply(self, params: Any, images: jax.Array) -> jax.Array:
        """Logits (N, classes) of images in [-1, 1]."""
        return nnx.merge(self.graph, params)(images)

    def label_loss(
        self,
        params: Any,
        refined: jax.Array,
        labels: jax.Array,
        key: jax.Array,
        synthetic: jax.Array | None = None,
    ) -> tuple[jax.Array, jax.Array]:
        """(loss, C's accuracy on the augmented refined images); -1 labels are ignored.

        loss: CE against the labels, or, given the synthetic inputs, KL(C(x) || C(R(x))) with
        both augmented alike (the same key), so the identity scores exactly 0.
        """
        params = jax.lax.stop_gradient(params)
        logits = self.apply(params, augment_for_classifier(refined, key))
        valid = labels >= 0
        hit = (jnp.argmax(logits, -1) == labels) & valid
        accuracy = hit.sum() / jnp.maximum(valid.sum(), 1)
        if synthetic is None:
            return losses.masked_cross_entropy(logits, labels), accuracy
        target = self.apply(params, augment_for_classifier(synthetic, key))
        return losses.masked_kl(jax.lax.stop_gradient(target), logits, valid), accuracy

    def _train_step(self, params, opt_state, images, labels, key, step):
        self.trace_count += 1  # runs at trace time only
        key = jax.random.fold_in(key, step)
        k_idx, k_aug = jax.random.split(key)
        idx = jax.random.randint(k_idx, (BATCH,), 0, images.shape[0])
        batch = to_model_range(images[idx])
        batch = augment_for_classifier(batch, k_aug)

        def loss_fn(p):
            return losses.masked_cross_entropy(self.apply(p, batch), labels[idx])

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = self.optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss


def train_classifier(
    fns: ClassifierFunctions,
    images: jax.Array,
    labels: jax.Array,
    steps: int,
    seed: int,
    on_report: Callable[[int, float], None] | None = None,
) -> Any:
    """C's parameters after `steps` Adam steps on augmented batches of the labelled images.

    images: (N, H, W, C) uint8/uint16 on the device; labels: int32 (N,), -1 rows ignored.
    Batches come from fold_in(key, step): the result does not depend on how it is called.
    on_report(step, loss) every steps // 5 steps and at the last (label_terms sends Progress).
    """
    params = jax.tree.map(jnp.copy, fns.init_params)
    opt_state = fns.optimizer.init(params)
    key = jax.random.key(seed + 104729)
    report = max(1, steps // 5)
    for step in range(steps):
        params, opt_state, loss = fns.train_step(
            params, opt_state, images, labels, key, jnp.int32(step)
        )
        if on_report is not None and ((step + 1) % report == 0 or step + 1 == steps):
            on_report(step + 1, float(loss))
    return params


def accuracy(
    fns: ClassifierFunctions, params: Any, images: np.ndarray, labels: np.ndarray
) -> float:
    """Fraction of labelled images (uint stored, (N, H, W, C)) that C puts in their class."""
    hits = total = 0
    chunk = 256
    for start in range(0, len(images), chunk):
        part = to_model_range(images[start : start + chunk])
        y = labels[start : start + chunk]
        padded = pad_to_batch(part, chunk)  # one shape: one compile
        logits = fns.predict(params, jnp.asarray(padded))[: len(part)]
        predicted = np.asarray(jnp.argmax(logits, -1))
        valid = y >= 0
        hits += int((predicted[valid] == y[valid]).sum())
        total += int(valid.sum())
    return hits / max(total, 1)
