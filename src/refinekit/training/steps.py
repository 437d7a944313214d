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
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .. import refiners
from ..config import TrainConfig
from ..io.pixels import to_model_range
from ..nn import microbatch
from ..nn.models import build_models
from . import adversarial as gan
from . import ema, health, losses, replay, statistics
from .ada import ada_adjust, ada_init, ada_observe
from .augment import augment, parse_policy
from .labels.terms import LabelTerms
from .optim import camera_learning_rate, disc_optimizer, make_optimizer, refiner_learning_rate
from .state import DeviceData, TrainState


@dataclass
class StepFunctions:
    """The static half of training: graphs, optimizers, shapes, mesh, and the jitted steps."""

    config: TrainConfig
    image_shape: tuple[int, int, int]  # (H, W, C)
    mesh: Mesh

    def __post_init__(self) -> None:
        config = self.config
        # Label classifier, projection discriminator, content terms (label_terms.py).
        self.label_terms = LabelTerms(config, self.image_shape)
        refiner, disc = build_models(
            config, self.image_shape[2], config.seed, classes=self.label_terms.disc_classes
        )
        self.refiner_graph, refiner_params = nnx.split(refiner, nnx.Param)
        self.disc_graph, disc_params = nnx.split(disc, nnx.Param)
        self._init_params = (refiner_params, disc_params)
        self.opt_refiner = make_optimizer(
            config, refiner_learning_rate(config), camera_learning_rate(config)
        )
        self.opt_disc = disc_optimizer(config)  # --freeze-disc-layers: optim.py
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
        if config.augment not in ("none", "auto"):  # train() resolves auto; unresolved: none
            self.policy = parse_policy(config.augment_policy, self.image_shape[2])
        self.trace_counts: dict[str, int] = {}
        self.pretrain_refiner = jax.jit(
            self._counted("pretrain_refiner", self._pretrain_refiner_step), donate_argnums=(0,)
        )
        self.pretrain_disc = jax.jit(
            self._counted("pretrain_disc", self._pretrain_disc_step), donate_argnums=(0,)
        )
        self.adversarial = jax.jit(
            self._counted("adversarial", self._adversarial_step), donate_argnums=(0,)
        )
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
            ema=jax.tree.map(jnp.copy, refiner_params),
            extras=self.init_extras(),
        )
        return jax.device_put(state, self.replicated)

    def init_extras(self) -> dict:
        """Further state kept in checkpoints: the frozen label classifier when the label loss is on."""
        return self.label_terms.init_extras()

    def multi_step(self, phase: str, count: int, unroll: bool = True):
        """`count` steps of `phase` in one call (lax.scan; unrolled by default, see docs/performance.md)."""
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

        wrapper.__name__ = wrapper.__qualname__ = name  # the program's name in JAX's logs
        return wrapper

    def _apply_refiner(self, params, images):
        return nnx.merge(self.refiner_graph, params)(images)

    def _apply_disc(self, params, images, labels=None):
        return nnx.merge(self.disc_graph, params)(images, labels)

    def _refine(self, params, images):
        return microbatch.forward(
            lambda x: self._apply_refiner(params, x), images, self.forward_micro_batch
        )

    def _sample(self, images: jax.Array, key: jax.Array) -> jax.Array:
        return self._sample_indexed(images, key)[0]

    def _sample_indexed(
        self, images: jax.Array, key: jax.Array, count: Any = None
    ) -> tuple[jax.Array, jax.Array]:
        """A random batch in [-1, 1] from the first `count` images (default: all), and the
        indices it was drawn from."""
        high = images.shape[0] if count is None else count
        idx = jax.random.randint(key, (self.config.batch_size,), 0, high)
        batch = to_model_range(images[idx])
        if self.batch_sharding is not None:
            batch = jax.lax.with_sharding_constraint(batch, self.batch_sharding)
        return batch, idx

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
    def refiner_extra_loss(self, state, params, refined, synthetic, labels, key, adversarial):
        """Further refiner loss terms (label keeping, content losses): (loss, metrics).

        refined/synthetic: (B, H, W, C) in [-1, 1]; labels: int32 (B,) or None.
        """
        if labels is None:
            labels = jnp.full((synthetic.shape[0],), -1, jnp.int32)
        refiner = nnx.merge(self.refiner_graph, params)
        return self.label_terms.refiner_extra_loss(
            state.extras, refiner, refined, synthetic, labels, key, adversarial, state.step
        )

    def _refiner_update(
        self,
        state: TrainState,
        synthetic: jax.Array,
        key: jax.Array,
        adversarial: bool,
        labels: jax.Array | None = None,
        frozen: jax.Array | None = None,
        real: jax.Array | None = None,
    ):
        lam = self.config.lambda_reg
        lam_stats = self.config.lambda_stats

        def loss_fn(params):
            # anchor: what R(x) must stay close to (x, or the camera's output under
            # acquisition+resnet, so the ResNet learns only what the camera cannot explain)
            refined, anchor = refiners.anchored(nnx.merge(self.refiner_graph, params), synthetic)
            psi = losses.content_psi(self.config.psi, self.config.content)
            reg = losses.self_regularisation(refined, anchor, psi)
            extra, extra_metrics = self.refiner_extra_loss(
                state, params, refined, synthetic, labels, key, adversarial
            )
            if not adversarial:
                return reg + extra, (reg, jnp.zeros(()), refined, extra_metrics)
            logits = self._apply_disc(state.disc, self._augment(refined, key, state.ada.p), labels)
            adv = gan.refiner_loss(logits, self.config.gan_loss)
            if real is not None:  # --lambda-stats: how images vary (statistics.py)
                stats = statistics.statistics_distance(refined, real)
                extra_metrics = {**extra_metrics, "statistics_distance": stats}
                extra = extra + lam_stats * stats
            return adv + lam * reg + extra, (reg, adv, refined, extra_metrics)

        grads, (reg, adv, refined, extra_metrics) = jax.grad(loss_fn, has_aux=True)(state.refiner)
        updates, opt_state = self.opt_refiner.update(grads, state.opt_refiner, state.refiner)
        params = optax.apply_updates(state.refiner, updates)
        if frozen is not None:  # --freeze-refiner-steps: a traced flag, one program every step
            old, new = (state.refiner, state.opt_refiner), (params, opt_state)
            params, opt_state = jax.tree.map(lambda a, b: jnp.where(frozen, a, b), old, new)
        metrics = {
            "refiner_adversarial": adv,
            "self_regularisation": reg,
            "mean_abs_change": jnp.abs(refined - synthetic).mean(),
            # Spread of the batch (per-pixel std over images): a collapsed refiner's is ~0.
            "refined_spread": refined.std(axis=0).mean(),
            "synthetic_spread": synthetic.std(axis=0).mean(),
            "refined_colour_spread": health.colour_spread(refined),
            "synthetic_colour_spread": health.colour_spread(synthetic),
            **extra_metrics,
        }
        return state.replace(refiner=params, opt_refiner=opt_state), metrics

    def _disc_update(
        self,
        state: TrainState,
        synthetic: jax.Array,
        real: jax.Array,
        keys: jax.Array,
        syn_labels: jax.Array | None = None,
        real_labels: jax.Array | None = None,
    ):
        half = self.half
        refined = jax.lax.stop_gradient(self._refine(state.refiner, synthetic))
        current = refined[:half]
        use_history = replay.can_sample(state.buffer, half)
        past, past_labels = replay.sample_labelled(state.buffer, half, keys[0])
        history = jnp.where(use_history, past, refined[half:])
        fake = jnp.concatenate([current, history])
        # Class ids for the projection discriminator (-1: no class, no projection term).
        if syn_labels is None:
            syn_labels = jnp.full((synthetic.shape[0],), -1, jnp.int32)
        if real_labels is None:
            real_labels = jnp.full((real.shape[0],), -1, jnp.int32)
        fake_labels = jnp.concatenate(
            [syn_labels[:half], jnp.where(use_history, past_labels, syn_labels[half:])]
        )
        all_labels = jnp.concatenate([real_labels, fake_labels])
        # One key for both batches: the real and the refined batch get identical transforms.
        real_in = self._augment(real, keys[2], state.ada.p)
        fake_in = self._augment(fake, keys[2], state.ada.p)

        kind = self.config.gan_loss

        def loss_fn(params):
            logits = self._apply_disc(params, jnp.concatenate([real_in, fake_in]), all_labels)
            real_logits, fake_logits = logits[: len(real)], logits[len(real) :]
            loss_real = gan.disc_loss(real_logits, True, kind)
            loss_fake = gan.disc_loss(fake_logits, False, kind)
            return (loss_real + loss_fake) / 2, (real_logits, fake_logits)

        grads, (real_logits, fake_logits) = jax.grad(loss_fn, has_aux=True)(state.disc)
        r1 = jnp.zeros(())
        if self.config.r1_gamma > 0:
            # Lazy R1 (StyleGAN2): its own gradient, every r1_every steps, weighted by
            # r1_every; the main gradient above stays outside the cond (same program as without).
            def r1_loss(params):
                penalty = gan.r1_penalty(
                    lambda x: self._apply_disc(params, x, real_labels), real_in
                )
                penalty = penalty * self.config.r1_every
                return self.config.r1_gamma / 2 * penalty, penalty

            def with_r1():
                return jax.grad(r1_loss, has_aux=True)(state.disc)

            def without_r1():
                return jax.tree.map(jnp.zeros_like, state.disc), jnp.zeros(())

            due = state.step % self.config.r1_every == 0
            r1_grads, r1 = jax.lax.cond(due, with_r1, without_r1)
            grads = jax.tree.map(jnp.add, grads, r1_grads)
        updates, opt_state = self.opt_disc.update(grads, state.opt_disc, state.disc)
        params = optax.apply_updates(state.disc, updates)
        buffer = replay.add(state.buffer, current, keys[1], syn_labels[:half])
        metrics = {
            "disc_real": gan.disc_loss(real_logits, True, kind),
            "disc_refined": gan.disc_loss(fake_logits[:half], False, kind),
            "disc_history": gan.disc_loss(fake_logits[half:], False, kind),
            "disc_acc_real": gan.accuracy(real_logits, True),
            "disc_acc_refined": gan.accuracy(fake_logits, False),
            "real_colour_spread": health.colour_spread(real),
            "history_fill": buffer.count.astype(jnp.float32) / buffer.capacity,
            "r1_penalty": r1,  # x r1_every on the steps it runs, 0 between: its interval mean
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

    def _disc_batches(self, data: DeviceData, k_syn: jax.Array, k_real: jax.Array):
        """(synthetic, real, synthetic labels, real labels) for one discriminator update."""
        synthetic, syn_idx = self._sample_indexed(data.synthetic, k_syn, data.synthetic_count)
        real, real_idx = self._sample_indexed(data.real, k_real, data.real_count)
        syn_labels = None if data.synthetic_labels is None else data.synthetic_labels[syn_idx]
        real_labels = None if data.real_labels is None else data.real_labels[real_idx]
        return synthetic, real, syn_labels, real_labels

    # ---- phases --------------------------------------------------------------------------
    def _pretrain_refiner_step(self, state: TrainState, data: DeviceData):
        (k_syn,) = self._keys(state, 1)
        synthetic, idx = self._sample_indexed(data.synthetic, k_syn, data.synthetic_count)
        labels = None if data.synthetic_labels is None else data.synthetic_labels[idx]
        state, metrics = self._refiner_update(state, synthetic, k_syn, False, labels)
        bad = self._mark_bad(state, metrics["self_regularisation"])
        state = state.replace(ema=state.refiner)  # the average starts with the adversarial phase
        return state.replace(step=state.step + 1, first_bad_step=bad), metrics

    def _pretrain_disc_step(self, state: TrainState, data: DeviceData):
        keys = self._keys(state, 5)
        synthetic, real, syn_labels, real_labels = self._disc_batches(data, keys[0], keys[1])
        state, metrics = self._disc_update(
            state, synthetic, real, keys[2:], syn_labels, real_labels
        )
        bad = self._mark_bad(state, metrics["disc_real"], metrics["disc_refined"])
        return state.replace(step=state.step + 1, first_bad_step=bad), metrics

    def _adversarial_step(self, state: TrainState, data: DeviceData):
        c = self.config
        keys = self._keys(state, c.kg + c.kd * 5)
        start: Any = data.adversarial_start
        if start is None:
            start = c.pretrain_refiner_steps + c.pretrain_disc_steps
        adversarial_steps = state.step - start
        # The refiner's updates are dropped (parameters and optimizer state kept) in the first
        # --freeze-refiner-steps adversarial steps; without it the program is as before.
        frozen = adversarial_steps < c.freeze_refiner_steps if c.freeze_refiner_steps else None
        for i in range(c.kg):
            synthetic, idx = self._sample_indexed(data.synthetic, keys[i], data.synthetic_count)
            labels = None if data.synthetic_labels is None else data.synthetic_labels[idx]
            real = None
            if c.lambda_stats > 0:
                k_real = jax.random.fold_in(keys[i], 11)
                real = self._sample_indexed(data.real, k_real, data.real_count)[0]
            state, r_metrics = self._refiner_update(
                state, synthetic, jax.random.fold_in(keys[i], 7), True, labels, frozen, real
            )
        decay = ema.effective_decay(c.ema_decay, adversarial_steps)
        state = state.replace(ema=ema.update(state.ema, state.refiner, decay))
        for j in range(c.kd):
            k = keys[c.kg + 5 * j : c.kg + 5 * (j + 1)]
            synthetic, real, syn_labels, real_labels = self._disc_batches(data, k[0], k[1])
            state, d_metrics = self._disc_update(
                state, synthetic, real, k[2:], syn_labels, real_labels
            )
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
