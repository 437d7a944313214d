"""PatchNCE content loss (Park et al. 2020, CUT), on the refiner's own features.

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
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

TAU = 0.07  # CUT's nce_T
PATCHES = 64  # locations per map (CUT uses 256 on 256x256 images)


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
