"""The training state and the jitted SimGAN steps.

One `TrainState` pytree holds everything that changes: both networks' parameters, both
optimizer states, the history buffer, the augmentation probability, the RNG key, the step.
Graph definitions, optimizers and data shapes are static and live in `StepFunctions`.
Each phase has one pure `step(state, data) -> (state, metrics)`, jitted once, state donated.
Data sets live on the device; batches are sampled inside the step from
`fold_in(key, step)`, so the numbers do not depend on how steps are grouped into calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx, struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from . import losses, microbatch, replay
from .augment import AdaState, ada_adjust, ada_init, ada_observe, augment, parse_policy
from .config import TrainConfig
from .models import build_models


@struct.dataclass
class TrainState:
    step: jax.Array  # int32 scalar: global step over all phases
    key: jax.Array  # uint32 raw key data (restorable by orbax like any array)
    refiner: Any  # nnx.State of the refiner's parameters
    disc: Any  # nnx.State of the discriminator's parameters
    opt_refiner: Any
    opt_disc: Any
    buffer: replay.HistoryBuffer
    ada: AdaState  # augmentation probability p (ADA adapts it) and its overfitting signal
    first_bad_step: jax.Array  # int32: first step with a non-finite loss, -1 if none


@struct.dataclass
class DeviceData:
    synthetic: jax.Array  # (N, H, W, C) uint8 or uint16
    real: jax.Array  # (M, H, W, C) uint8 or uint16


def to_model_range(images: jax.Array) -> jax.Array:
    """Stored integers -> float32 in [-1, 1]."""
    scale = 65535.0 if images.dtype == jnp.uint16 else 255.0
    return images.astype(jnp.float32) * (2.0 / scale) - 1.0


def make_optimizer(config: TrainConfig, lr: float) -> optax.GradientTransformation:
    if config.optimizer == "sgd":
        return optax.sgd(lr)
    return optax.adam(lr, b1=0.5, b2=0.999)  # beta1 = 0.5: the usual GAN setting


@dataclass
class StepFunctions:
    """The static half of training: graphs, optimizers, shapes, mesh, and the jitted steps."""

    config: TrainConfig
    image_shape: tuple[int, int, int]  # (H, W, C)
    mesh: Mesh

    def __post_init__(self) -> None:
        config = self.config
        refiner, disc = build_models(config, self.image_shape[2], config.seed)
        self.refiner_graph, refiner_params = nnx.split(refiner, nnx.Param)
        self.disc_graph, disc_params = nnx.split(disc, nnx.Param)
        self._init_params = (refiner_params, disc_params)
        self.opt_refiner = make_optimizer(config, config.lr_refiner)
        self.opt_disc = make_optimizer(config, config.lr_disc)
        self.half = config.batch_size // 2
        # Forward-only refiner passes (the discriminator's fake batch, sample grids) run a few
        # images at a time on CPU: 1.3-1.5x faster there (microbatch.py); gradients do not.
        self.forward_micro_batch = microbatch.resolve(None, *self.image_shape[:2])
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        devices = self.mesh.devices.size
        self.batch_sharding = (
            NamedSharding(self.mesh, PartitionSpec("data"))
            if devices > 1 and config.batch_size % devices == 0
            else None
        )
        self.policy: tuple[str, ...] = ()
        if config.augment != "none":
            self.policy = parse_policy(config.augment_policy, self.image_shape[2])
        self.trace_counts: dict[str, int] = {}
        donate = dict(donate_argnums=(0,))
        self.pretrain_refiner = jax.jit(
            self._counted("pretrain_refiner", self._pretrain_refiner_step), **donate
        )
        self.pretrain_disc = jax.jit(
            self._counted("pretrain_disc", self._pretrain_disc_step), **donate
        )
        self.adversarial = jax.jit(self._counted("adversarial", self._adversarial_step), **donate)
        self._multi: dict[tuple[str, int], Any] = {}
        self.refine = jax.jit(self._counted("refine", self._refine))

    # ---- state ---------------------------------------------------------------------------
    def init_state(self) -> TrainState:
        refiner_params, disc_params = jax.tree.map(jnp.copy, self._init_params)
        h, w, c = self.image_shape
        state = TrainState(
            step=jnp.zeros((), jnp.int32),
            key=jax.random.key_data(jax.random.key(self.config.seed)),
            refiner=refiner_params,
            disc=disc_params,
            opt_refiner=self.opt_refiner.init(refiner_params),
            opt_disc=self.opt_disc.init(disc_params),
            buffer=replay.init(self.config.history_size, (h, w, c)),
            ada=ada_init(1.0 if self.config.augment == "diffaugment" else 0.0),
            first_bad_step=jnp.full((), -1, jnp.int32),
        )
        return jax.device_put(state, self.replicated)

    def multi_step(self, phase: str, count: int, unroll: bool = True):
        """`count` steps of `phase` in one call (lax.scan; unrolled by default, see README)."""
        if count == 1:
            return getattr(self, phase)
        key = (phase, count)
        if key not in self._multi:
            single = getattr(self, f"_{phase}_step")

            def many(state, data):
                def body(carry, _):
                    return single(carry, data)

                state, metrics = jax.lax.scan(
                    body, state, None, length=count, unroll=count if unroll else 1
                )
                return state, jax.tree.map(lambda m: m.mean(), metrics)

            self._multi[key] = jax.jit(self._counted(f"{phase}x{count}", many), donate_argnums=(0,))
        return self._multi[key]

    # ---- pieces --------------------------------------------------------------------------
    def _counted(self, name: str, fn):
        def wrapper(*args):
            self.trace_counts[name] = self.trace_counts.get(name, 0) + 1  # runs at trace time only
            return fn(*args)

        return wrapper

    def _apply_refiner(self, params, images):
        return nnx.merge(self.refiner_graph, params)(images)

    def _apply_disc(self, params, images):
        return nnx.merge(self.disc_graph, params)(images)

    def _refine(self, params, images):
        return microbatch.forward(
            lambda x: self._apply_refiner(params, x), images, self.forward_micro_batch
        )

    def _sample(self, images: jax.Array, key: jax.Array) -> jax.Array:
        idx = jax.random.randint(key, (self.config.batch_size,), 0, images.shape[0])
        batch = to_model_range(images[idx])
        if self.batch_sharding is not None:
            batch = jax.lax.with_sharding_constraint(batch, self.batch_sharding)
        return batch

    def _augment(self, images: jax.Array, key: jax.Array, p: jax.Array) -> jax.Array:
        if not self.policy:
            return images
        return augment(images, key, self.policy, p)

    def _keys(self, state: TrainState, count: int):
        key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)
        return jax.random.split(key, count)

    @staticmethod
    def _mark_bad(state: TrainState, *values: jax.Array) -> jax.Array:
        finite = jnp.all(jnp.stack([jnp.isfinite(v) for v in values]))
        return jnp.where((state.first_bad_step < 0) & ~finite, state.step, state.first_bad_step)

    # ---- updates -------------------------------------------------------------------------
    def _refiner_update(
        self, state: TrainState, synthetic: jax.Array, key: jax.Array, adversarial: bool
    ):
        lam = self.config.lambda_reg

        def loss_fn(params):
            refined = self._apply_refiner(params, synthetic)
            reg = losses.self_regularisation(refined, synthetic, self.config.psi)
            if not adversarial:
                return reg, (reg, jnp.zeros(()), refined)
            logits = self._apply_disc(state.disc, self._augment(refined, key, state.ada.p))
            adv = losses.patch_cross_entropy(logits, losses.REAL)
            return adv + lam * reg, (reg, adv, refined)

        grads, (reg, adv, refined) = jax.grad(loss_fn, has_aux=True)(state.refiner)
        updates, opt_state = self.opt_refiner.update(grads, state.opt_refiner, state.refiner)
        params = optax.apply_updates(state.refiner, updates)
        metrics = {
            "refiner_adversarial": adv,
            "self_regularisation": reg,
            "mean_abs_change": jnp.abs(refined - synthetic).mean(),
        }
        return state.replace(refiner=params, opt_refiner=opt_state), metrics

    def _disc_update(
        self, state: TrainState, synthetic: jax.Array, real: jax.Array, keys: jax.Array
    ):
        half = self.half
        refined = jax.lax.stop_gradient(self._refine(state.refiner, synthetic))
        current = refined[:half]
        use_history = replay.can_sample(state.buffer, half)
        history = jnp.where(use_history, replay.sample(state.buffer, half, keys[0]), refined[half:])
        fake = jnp.concatenate([current, history])
        # One key for both batches: the real and the refined batch get identical transforms.
        real_in = self._augment(real, keys[2], state.ada.p)
        fake_in = self._augment(fake, keys[2], state.ada.p)

        def loss_fn(params):
            logits = self._apply_disc(params, jnp.concatenate([real_in, fake_in]))
            real_logits, fake_logits = logits[: len(real)], logits[len(real) :]
            loss_real = losses.patch_cross_entropy(real_logits, losses.REAL)
            loss_fake = losses.patch_cross_entropy(fake_logits, losses.REFINED)
            return (loss_real + loss_fake) / 2, (real_logits, fake_logits)

        grads, (real_logits, fake_logits) = jax.grad(loss_fn, has_aux=True)(state.disc)
        updates, opt_state = self.opt_disc.update(grads, state.opt_disc, state.disc)
        params = optax.apply_updates(state.disc, updates)
        buffer = replay.add(state.buffer, current, keys[1])
        metrics = {
            "disc_real": losses.patch_cross_entropy(real_logits, losses.REAL),
            "disc_refined": losses.patch_cross_entropy(fake_logits[:half], losses.REFINED),
            "disc_history": losses.patch_cross_entropy(fake_logits[half:], losses.REFINED),
            "disc_acc_real": losses.patch_accuracy(real_logits, losses.REAL),
            "disc_acc_refined": losses.patch_accuracy(fake_logits, losses.REFINED),
            "history_fill": buffer.count.astype(jnp.float32) / buffer.capacity,
        }
        state = state.replace(disc=params, opt_disc=opt_state, buffer=buffer)
        if self.config.augment == "ada":
            c = self.config
            ada = ada_observe(state.ada, losses.real_margin(real_logits))
            ada = ada_adjust(
                ada,
                target=c.ada_target,
                batch_size=c.batch_size,
                interval=c.ada_interval,
                speed_images=c.ada_speed,
            )
            state = state.replace(ada=ada)
        return state, metrics

    # ---- phases --------------------------------------------------------------------------
    def _pretrain_refiner_step(self, state: TrainState, data: DeviceData):
        (k_syn,) = self._keys(state, 1)
        synthetic = self._sample(data.synthetic, k_syn)
        state, metrics = self._refiner_update(state, synthetic, k_syn, adversarial=False)
        bad = self._mark_bad(state, metrics["self_regularisation"])
        return state.replace(step=state.step + 1, first_bad_step=bad), metrics

    def _pretrain_disc_step(self, state: TrainState, data: DeviceData):
        keys = self._keys(state, 5)
        synthetic = self._sample(data.synthetic, keys[0])
        real = self._sample(data.real, keys[1])
        state, metrics = self._disc_update(state, synthetic, real, keys[2:])
        bad = self._mark_bad(state, metrics["disc_real"], metrics["disc_refined"])
        return state.replace(step=state.step + 1, first_bad_step=bad), metrics

    def _adversarial_step(self, state: TrainState, data: DeviceData):
        c = self.config
        keys = self._keys(state, c.kg + c.kd * 5)
        for i in range(c.kg):
            synthetic = self._sample(data.synthetic, keys[i])
            state, r_metrics = self._refiner_update(
                state, synthetic, jax.random.fold_in(keys[i], 7), adversarial=True
            )
        for j in range(c.kd):
            k = keys[c.kg + 5 * j : c.kg + 5 * (j + 1)]
            synthetic = self._sample(data.synthetic, k[0])
            real = self._sample(data.real, k[1])
            state, d_metrics = self._disc_update(state, synthetic, real, k[2:])
        metrics = {
            **r_metrics,
            **d_metrics,
            "augment_p": state.ada.p,
            "ada_signal": state.ada.signal,
        }
        bad = self._mark_bad(
            state,
            metrics["refiner_adversarial"],
            metrics["self_regularisation"],
            metrics["disc_real"],
        )
        return state.replace(step=state.step + 1, first_bad_step=bad), metrics


def make_mesh() -> Mesh:
    """A 1-D data-parallel mesh over all local devices (and all hosts after jax.distributed)."""
    return Mesh(np.asarray(jax.devices()), ("data",))
