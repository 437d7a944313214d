"""Measure stability options on a stress case (docs/training.md): pretrain once, then branch.

    PYTHONPATH=src python tests/stress_sweep.py SYN REAL --steps 400 [--variants a,b] > out.jsonl

Pretrains the refiner and the discriminator once with the base config (today's defaults), then
runs each variant's adversarial phase from that same state, logging every 50 steps: the
largest mean_abs_change, the smallest D loss, the batch-spread ratio, and whether all D losses
were < 0.01 (the collapse signs). One JSON line per variant on stdout.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import jax
import numpy as np

from refinekit.config import TrainConfig
from refinekit.training.data import load_training_data
from refinekit.training.state import DeviceData, make_mesh
from refinekit.training.steps import StepFunctions

VARIANTS: dict[str, dict] = {
    "base": {},
    "r1_1": {"r1_gamma": 1.0},
    "r1_10": {"r1_gamma": 10.0},
    "lsgan": {"gan_loss": "lsgan"},
    "hinge": {"gan_loss": "hinge"},
    "clip1": {"grad_clip": 1.0},
    "lr_d_low": {"lr_disc": 5e-5},
    "hinge_r1": {"gan_loss": "hinge", "r1_gamma": 1.0},
    "lsgan_r1": {"gan_loss": "lsgan", "r1_gamma": 1.0},
    "bce_r1_clip": {"r1_gamma": 1.0, "grad_clip": 1.0},
    "r1_10_lr": {"r1_gamma": 10.0, "lr_refiner": 1e-4},
    "hinge_r1_10": {"gan_loss": "hinge", "r1_gamma": 10.0},
    "lr_r_low": {"lr_refiner": 5e-5},
    "lr_r_low_r1": {"lr_refiner": 5e-5, "r1_gamma": 10.0},
    "kg1": {"kg": 1},
    "lambda2": {"lambda_reg": 2.0},
}


def graft_optimizer(variant_fns, params, base_opt_state, clip: bool):
    if not clip:
        return base_opt_state
    fresh = variant_fns.opt_refiner.init(params)
    return (fresh[0], base_opt_state)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("synthetic")
    parser.add_argument("real")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--pretrain-disc", type=int, default=200)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--preset", default="gaze")
    parser.add_argument("--cache", default="", help="pickle of the pretrained state (reused)")
    args = parser.parse_args()
    base = TrainConfig(
        refiner="resnet",
        synthetic=args.synthetic,
        real=args.real,
        preset=args.preset,
        pretrain_disc_steps=args.pretrain_disc,
        steps=args.steps,
    )
    base, data = load_training_data(base)
    shape = (*base.size, base.channels)
    fns = StepFunctions(base, shape, make_mesh())
    device = jax.device_put(DeviceData(data.synthetic, data.real))
    state = fns.init_state()
    t0 = time.perf_counter()
    cache = Path(args.cache) if args.cache else None
    if cache is not None and cache.exists():
        with open(cache, "rb") as f:
            host, end_pretrain_change, pre = pickle.load(f)
        state = jax.device_put(jax.tree.unflatten(jax.tree.structure(state), host))
    else:
        for _ in range(base.pretrain_refiner_steps):
            state, m = fns.pretrain_refiner(state, device)
        end_pretrain_change = float(m["mean_abs_change"])
        for _ in range(base.pretrain_disc_steps):
            state, m = fns.pretrain_disc(state, device)
        pre = {k: float(v) for k, v in m.items()}
        if cache is not None:
            with open(cache, "wb") as f:
                host = [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state))]
                pickle.dump((host, end_pretrain_change, pre), f)
    print(
        json.dumps(
            {
                "pretrain": pre,
                "end_pretrain_change": end_pretrain_change,
                "seconds": time.perf_counter() - t0,
            }
        ),
        flush=True,
    )
    snapshot = jax.device_get(state)
    for name in args.variants.split(","):
        overrides = VARIANTS[name]
        config = base.replace(**overrides)
        vfns = StepFunctions(config, shape, make_mesh())
        s = jax.device_put(snapshot)
        clip = config.grad_clip > 0
        s = s.replace(
            opt_refiner=graft_optimizer(vfns, s.refiner, s.opt_refiner, clip),
            opt_disc=graft_optimizer(vfns, s.disc, s.opt_disc, clip),
        )
        t0 = time.perf_counter()
        logs, sums, n = [], None, 0
        for i in range(args.steps):
            s, m = vfns.adversarial(s, device)
            sums = m if sums is None else jax.tree.map(lambda a, b: a + b, sums, m)
            n += 1
            if (i + 1) % 50 == 0:
                host = {k: float(v) / n for k, v in jax.device_get(sums).items()}
                logs.append(host)
                sums, n = None, 0
        changes = [r["mean_abs_change"] for r in logs]
        d_all_low = [max(r["disc_real"], r["disc_refined"], r["disc_history"]) < 0.01 for r in logs]
        spread = [r["refined_spread"] / max(r["synthetic_spread"], 1e-9) for r in logs]
        out = {
            "variant": name,
            **overrides,
            "max_change": max(changes),
            "last_change": changes[-1],
            "changes": [round(c, 3) for c in changes],
            "d_saturated_intervals": int(sum(d_all_low)),
            "min_spread_ratio": min(spread),
            "last": {k: round(v, 4) for k, v in logs[-1].items()},
            "seconds": time.perf_counter() - t0,
        }
        print(json.dumps(out), flush=True)
        print(name, out["max_change"], out["d_saturated_intervals"], file=sys.stderr)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
