"""Content losses beyond the L1: PatchNCE (Park et al. 2020, CUT) on the refiner's own
features, and a structure-tensor orientation loss.

PatchNCE.

For each hidden map of the refiner (models.Refiner.forward_with_features), P locations are
drawn (the same for every image of the batch, as in CUT). The feature of R(x) at a location is
the query; the feature of x at the same location is its positive, the features of x at the
other P - 1 locations of the same image are the negatives. With L2-normalised features and a
temperature tau, the loss is the cross-entropy of picking the positive:

    -log softmax_j(<q_i, k_j> / tau)[i],   mean over images, locations and maps.

The keys (features of x) are held constant, as in CUT. Unlike CUT there is no learned MLP head
(one less network in the state); the refiner's maps are used directly. It asks "is this patch
of the output still the patch of the input it came from, rather than another patch", which a
change of texture or intensity can satisfy while moving a stroke cannot.

Structure (`--content structure`). The local orientation of the image: from the gradients
(gx, gy) of the channel mean, the structure tensor J = G_sigma * [gx^2, gy^2, gx gy] and its
doubled-angle orientation vector

    o = (Jxx - Jyy, 2 Jxy) / (Jxx + Jyy + eps),

which points along the dominant edge direction with length = coherence (1: one direction, 0:
flat or isotropic). Dividing by the local energy makes it blind to contrast, brightness, blur
that keeps orientation, and weak isotropic grain, so the refiner may change those freely; what
it cannot do for free is draw edges in a new direction, e.g. cross bands over stripes, which
turns stripes into a grid. The loss is mean |o(R(x)) - o(x)|, o(x) held constant.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from .losses import lowpass

TAU = 0.07  # CUT's nce_T
PATCHES = 64  # locations per map (CUT uses 256 on 256x256 images)
STRUCTURE_SIGMA = 1.0  # window of the structure tensor, pixels
# Energy floor of o's denominator, in units of squared [-1, 1] gradients: flat areas and grain
# weaker than a gradient of ~0.1 per pixel count as "no orientation" rather than as noise.
STRUCTURE_EPS = 1e-2


def patch_nce(queries: jax.Array, keys: jax.Array, locations: jax.Array, tau: float = TAU):
    """PatchNCE of one pair of maps. queries, keys: (N, H, W, F); locations: int (P,) indices
    into H*W. Returns the mean cross-entropy (a scalar)."""
    n, h, w, f = queries.shape
    q = queries.reshape(n, h * w, f)[:, locations].astype(jnp.float32)
    k = jax.lax.stop_gradient(keys.reshape(n, h * w, f)[:, locations].astype(jnp.float32))
    q = q / jnp.maximum(jnp.linalg.norm(q, axis=-1, keepdims=True), 1e-6)
    k = k / jnp.maximum(jnp.linalg.norm(k, axis=-1, keepdims=True), 1e-6)
    logits = jnp.einsum("npf,nqf->npq", q, k) / tau
    targets = jnp.broadcast_to(jnp.arange(locations.shape[0]), logits.shape[:2])
    return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()


def multi_layer_nce(
    output_maps: list[jax.Array], input_maps: list[jax.Array], key: jax.Array
) -> jax.Array:
    """Mean PatchNCE over the maps; each map gets its own random PATCHES locations."""
    total = jnp.zeros(())
    for i, (q, k) in enumerate(zip(output_maps, input_maps, strict=True)):
        h, w = q.shape[1:3]
        count = min(PATCHES, h * w)
        locations = jax.random.permutation(jax.random.fold_in(key, i), h * w)[:count]
        total = total + patch_nce(q, k, locations)
    return total / len(output_maps)


def orientation_field(images: jax.Array, sigma: float = STRUCTURE_SIGMA) -> jax.Array:
    """Doubled-angle orientation vectors (N, H, W, 2) of NHWC images (module docstring)."""
    g = images.astype(jnp.float32).mean(axis=-1, keepdims=True)
    p = jnp.pad(g, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    gx = (p[:, 1:-1, 2:] - p[:, 1:-1, :-2]) / 2
    gy = (p[:, 2:, 1:-1] - p[:, :-2, 1:-1]) / 2
    j = lowpass(jnp.concatenate([gx * gx, gy * gy, gx * gy], axis=-1), sigma)
    jxx, jyy, jxy = j[..., 0], j[..., 1], j[..., 2]
    energy = jxx + jyy + STRUCTURE_EPS
    return jnp.stack([(jxx - jyy) / energy, 2 * jxy / energy], axis=-1)


def structure_loss(refined: jax.Array, synthetic: jax.Array) -> jax.Array:
    """mean |o(R(x)) - o(x)| over pixels and both components, o(x) constant."""
    target = jax.lax.stop_gradient(orientation_field(synthetic))
    return jnp.abs(orientation_field(refined) - target).mean()
