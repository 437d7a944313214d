#!/usr/bin/env python
"""The PyTorch reference for refinekit's speed figures: SimGAN (Shrivastava et al.,
CVPR 2017) training-step / refine throughput in plain, idiomatic PyTorch on CPU.

Benchmark-only: needs PyTorch (`pip install torch==2.13.0` for the CPU build, or
`pip install -e ".[bench]"`), which refinekit itself never imports. How the ratio against
`refinekit bench` is measured, and the figures: docs/performance.md.

Architecture (paper, Sec. 3.1, eye-gaze setup):
  Refiner R: conv3x3(C->64)+ReLU, 4 x ResNet block [conv3x3(64)+ReLU,
             conv3x3(64), +identity, ReLU], conv1x1(64->C), tanh.
  Discriminator D (local / patch): conv3x3 s2 96 +ReLU, conv3x3 s2 64 +ReLU,
             maxpool3x3 s1, conv3x3 32 +ReLU, conv1x1 32 +ReLU, conv1x1 2
             -> 2-class logits at every location.  All convs 'same' padded.
Losses:
  L_R = mean_patches CE(D(R(x)), 'real') + lam * mean_batch ||R(x) - x||_1
  L_D = mean_patches CE(D(y), 'real') + CE(D(x~), 'refined'), where half of
        the refined batch x~ comes from a history buffer of refined images;
        after each D update b/2 buffer slots are replaced (random slots once
        the buffer is full, appended before that) by newly refined images.
One benchmark "step" = Kg refiner updates + Kd discriminator updates (each D
update refines a fresh synthetic batch with R in no-grad mode), as in
Algorithm 1 of the paper.

Throughput is reported as synthetic images pushed through the refiner per
second: (Kg + Kd) * b / step_time (Kg*b of them with backward).  ms/step is
reported too, so other definitions can be derived.

Every timed repetition records how much CPU *other* processes used meanwhile
(/proc/stat minus our own rusage); repetitions where that exceeds
--max-foreign are discarded and re-run, so numbers are not polluted by other
jobs on a shared machine (--max-foreign 1 keeps every repetition).

--vs-refinekit times `refinekit bench --json` (the same networks: --preset gaze, the same
size, batch, Kg and Kd) just before and just after the PyTorch variants and prints the
ratio refinekit / PyTorch for each variant: the one command behind docs/performance.md's
ratios.

Examples:
  python benchmarks/torch_reference.py --help
  python benchmarks/torch_reference.py --mode train --config eyes --batch 64 --variant eager_cl
  python benchmarks/torch_reference.py --mode refine --config eyes --variant compile_freeze_cl
  python benchmarks/torch_reference.py --mode train --variant eager_cl,compile --vs-refinekit
  python benchmarks/torch_reference.py --mode flops --config eyes --batch 64
  python benchmarks/torch_reference.py --mode check --config eyes
  python benchmarks/torch_reference.py --report results.jsonl      # markdown table
"""

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time

CONFIGS = {
    # name: (channels, height, width)
    "eyes": (1, 35, 55),  # paper: UnityEyes -> MPIIGaze, 55x35 grayscale
    "rgb64": (3, 64, 64),  # larger RGB config
}

# Attainable FP32 peak of the 2-core machine docs/performance.md's figures come from
# (2 Zen 5 cores x 2 512-bit FMA pipes x 16 lanes x 2 FLOP x ~3.6 GHz; an FMA loop
# measured 450-475 GFLOP/s). Only the "% of peak" column uses it.
PEAK_GFLOPS = 460.0
# torch itself writes TORCHINDUCTOR_CACHE_DIR into os.environ, so remember
# whether the user set it (e.g. to a fresh dir for a cold-compile run).
_USER_INDUCTOR_CACHE = os.environ.get("TORCHINDUCTOR_CACHE_DIR")

_LIB = "/usr/lib/x86_64-linux-gnu/"
ALLOCATORS = {
    "default": {},
    # jemalloc with decay disabled: freed pages are kept and reused
    "jemalloc": {
        "LD_PRELOAD": _LIB + "libjemalloc.so.2",
        "MALLOC_CONF": "oversize_threshold:1,background_thread:true,"
        "metadata_thp:auto,dirty_decay_ms:-1,"
        "muzzy_decay_ms:-1",
    },
    "tcmalloc": {"LD_PRELOAD": _LIB + "libtcmalloc.so.4"},
    # glibc, but never trim the heap top back to the OS
    "glibc-tuned": {
        "MALLOC_MMAP_THRESHOLD_": "4294967296",
        "MALLOC_TRIM_THRESHOLD_": "17179869184",
        "MALLOC_TOP_PAD_": "1073741824",
    },
}

TRAIN_VARIANTS = ["eager", "eager_cl", "compile", "compile_cl", "maxautotune", "maxautotune_cl"]
REFINE_VARIANTS = TRAIN_VARIANTS + ["compile_freeze", "compile_freeze_cl"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="SimGAN (Shrivastava et al. 2017) PyTorch CPU benchmark",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--mode",
        choices=["train", "refine", "flops", "check"],
        default="train",
        help="train: time full training steps; refine: time R "
        "inference; flops: print FLOP counts; check: short "
        "run on fixed data printing losses",
    )
    p.add_argument(
        "--config",
        choices=sorted(CONFIGS),
        default="eyes",
        help="eyes = 1x35x55 (paper), rgb64 = 3x64x64",
    )
    p.add_argument("--batch", type=int, default=64, help="training batch size b (paper: 512)")
    p.add_argument("--refine-batch", type=int, default=256, help="batch size for --mode refine")
    p.add_argument("--kg", type=int, default=2, help="refiner updates per step (paper: 2)")
    p.add_argument("--kd", type=int, default=1, help="discriminator updates per step (paper: 1)")
    p.add_argument(
        "--opt",
        choices=["sgd", "adam"],
        default="sgd",
        help="optimizer for both nets (paper: SGD lr 1e-3)",
    )
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument(
        "--lam",
        type=float,
        default=1e-4,
        help="weight of the L1 self-regularisation term (sum over pixels, mean over batch)",
    )
    p.add_argument(
        "--buffer-size", type=int, default=12800, help="history buffer capacity (images)"
    )
    p.add_argument(
        "--variant",
        default="eager_cl",
        help="comma-separated list (several = measured "
        "interleaved, round-robin, in one process) of: "
        + ", ".join(REFINE_VARIANTS)
        + " (_cl = channels_last; compile = torch.compile "
        "mode=default; maxautotune = mode="
        "max-autotune-no-cudagraphs; compile_freeze = "
        "inductor freezing, refine mode only)",
    )
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed warm-up steps (default: 1 eager, 2 compiled)",
    )
    p.add_argument(
        "--reps",
        type=int,
        default=None,
        help="timed repetitions (default: as many as fit in --time-budget, at least --min-reps)",
    )
    p.add_argument("--min-reps", type=int, default=3)
    p.add_argument("--max-reps", type=int, default=15)
    p.add_argument(
        "--time-budget", type=float, default=35.0, help="seconds of timed repetitions to aim for"
    )
    p.add_argument(
        "--max-foreign",
        type=float,
        default=0.05,
        help="discard a rep if other processes used more than this "
        "fraction of total CPU capacity during it",
    )
    p.add_argument(
        "--idle-wait",
        type=float,
        default=180.0,
        help="max seconds to wait for the machine to be idle "
        "before the first rep and after a discarded rep",
    )
    p.add_argument(
        "--alloc",
        choices=sorted(ALLOCATORS),
        default="default",
        help="memory allocator: re-exec with LD_PRELOAD/MALLOC_* "
        "set (glibc's default returns big activation buffers "
        "to the OS after every op, so every step page-faults "
        "them back in)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="append a JSON line with the results to this file")
    p.add_argument(
        "--report",
        default=None,
        metavar="JSONL",
        help="print a markdown table from a results file and exit",
    )
    p.add_argument("--check-steps", type=int, default=60)
    p.add_argument("--check-batch", type=int, default=16)
    p.add_argument(
        "--vs-refinekit",
        action="store_true",
        help="train/refine: also time `refinekit bench --json` with the "
        "same networks before and after, and print the ratios",
    )
    p.add_argument(
        "--refinekit", default="refinekit", help="the refinekit command for --vs-refinekit"
    )
    p.add_argument(
        "--refinekit-repeats", type=int, default=10, help="--repeats for each refinekit bench call"
    )
    return p.parse_args(argv)


# ----------------------------------------------------------------------------
# CPU accounting: detect other processes competing for our 2 vCPUs.
# ----------------------------------------------------------------------------
_HZ = os.sysconf("SC_CLK_TCK")
_NCPU = os.cpu_count() or 1


def _proc_busy_s():
    with open("/proc/stat") as f:
        parts = f.readline().split()
    v = [int(x) for x in parts[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
    return busy / _HZ, v[7] / _HZ


def _self_cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


class CpuWatch:
    def __enter__(self):
        self.t0 = time.perf_counter()
        self.b0, self.s0 = _proc_busy_s()
        self.m0 = _self_cpu_s()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        b1, s1 = _proc_busy_s()
        m1 = _self_cpu_s()
        foreign = (b1 - self.b0) - (m1 - self.m0)
        self.foreign_frac = max(0.0, foreign) / (self.wall * _NCPU)
        self.steal_frac = (s1 - self.s0) / (self.wall * _NCPU)
        self.self_util = (m1 - self.m0) / (self.wall * _NCPU)
        return False


def wait_idle(max_wait, thresh, quiet=False):
    """Wait until other processes use < thresh of the CPUs over 1 s."""
    t_start = time.time()
    while True:
        with CpuWatch() as w:
            time.sleep(1.0)
        if w.foreign_frac < thresh:
            return time.time() - t_start
        if time.time() - t_start > max_wait:
            if not quiet:
                print(
                    f"  [idle-wait] gave up after {max_wait:.0f}s (foreign={w.foreign_frac:.2f})",
                    flush=True,
                )
            return time.time() - t_start


# ----------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------
def build(torch, C):
    nn = torch.nn
    F = torch.nn.functional

    class ResBlock(nn.Module):
        def __init__(self, ch=64):
            super().__init__()
            self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
            self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

        def forward(self, x):
            y = F.relu(self.conv1(x), inplace=True)
            y = self.conv2(y)
            return F.relu(y + x, inplace=True)

    class Refiner(nn.Module):
        def __init__(self, C, ch=64, nblocks=4):
            super().__init__()
            self.conv_in = nn.Conv2d(C, ch, 3, padding=1)
            self.blocks = nn.Sequential(*[ResBlock(ch) for _ in range(nblocks)])
            self.conv_out = nn.Conv2d(ch, C, 1)

        def forward(self, x):
            h = F.relu(self.conv_in(x), inplace=True)
            h = self.blocks(h)
            return torch.tanh(self.conv_out(h))

    class Discriminator(nn.Module):
        def __init__(self, C):
            super().__init__()
            self.conv1 = nn.Conv2d(C, 96, 3, stride=2, padding=1)
            self.conv2 = nn.Conv2d(96, 64, 3, stride=2, padding=1)
            self.pool = nn.MaxPool2d(3, stride=1, padding=1)
            self.conv3 = nn.Conv2d(64, 32, 3, padding=1)
            self.conv4 = nn.Conv2d(32, 32, 1)
            self.conv5 = nn.Conv2d(32, 2, 1)

        def forward(self, x):
            h = F.relu(self.conv1(x), inplace=True)
            h = F.relu(self.conv2(h), inplace=True)
            h = self.pool(h)
            h = F.relu(self.conv3(h), inplace=True)
            h = F.relu(self.conv4(h), inplace=True)
            return self.conv5(h)  # (N, 2, h, w) logits per patch

    return Refiner(C), Discriminator(C)


class HistoryBuffer:
    """Fixed-capacity tensor buffer of refined images (paper Sec. 2.3)."""

    def __init__(self, torch, capacity, shape, memory_format):
        self.torch = torch
        self.cap = capacity
        self.buf = torch.empty((capacity,) + tuple(shape)).contiguous(memory_format=memory_format)
        self.n = 0

    def sample(self, k):
        idx = self.torch.randint(0, self.n, (k,))
        return self.buf.index_select(0, idx)

    def push(self, imgs):
        k = imgs.shape[0]
        if self.n + k <= self.cap:
            self.buf[self.n : self.n + k] = imgs
            self.n += k
        else:
            idx = self.torch.randperm(self.cap)[:k]
            self.buf.index_copy_(0, idx, imgs)


def make_data(torch, n, C, H, W, gen):
    """Random images in [-1, 1]; 'real' differs statistically from
    'synthetic' (extra high-frequency noise) so D has something to learn."""
    F = torch.nn.functional
    lo = torch.randn(n, C, (H + 3) // 4, (W + 3) // 4, generator=gen)
    base = F.interpolate(lo, size=(H, W), mode="bilinear", align_corners=False)
    syn = torch.tanh(base)
    lo2 = torch.randn(n, C, (H + 3) // 4, (W + 3) // 4, generator=gen)
    base2 = F.interpolate(lo2, size=(H, W), mode="bilinear", align_corners=False)
    real = torch.tanh(base2 + 0.35 * torch.randn(n, C, H, W, generator=gen))
    return syn.contiguous(), real.contiguous()


# ----------------------------------------------------------------------------
# Trainer
# ----------------------------------------------------------------------------
class SimGAN:
    def __init__(self, torch, args, variant, C, H, W, b):
        self.torch = torch
        self.args = args
        F = torch.nn.functional
        self.F = F
        self.b = b
        self.half = b // 2
        self.cl = variant.endswith("_cl")
        self.mf = torch.channels_last if self.cl else torch.contiguous_format
        torch.manual_seed(args.seed)
        R, D = build(torch, C)
        self.R = R.to(memory_format=self.mf)
        self.D = D.to(memory_format=self.mf)
        self.r_params = list(self.R.parameters())
        self.d_params = list(self.D.parameters())
        opt_cls = torch.optim.SGD if args.opt == "sgd" else torch.optim.Adam

        def mk(ps):
            return opt_cls(ps, lr=args.lr)

        self.opt_R = mk(self.r_params)
        self.opt_D = mk(self.d_params)
        self.buffer = HistoryBuffer(torch, args.buffer_size, (C, H, W), self.mf)

        # D output spatial size -> constant label tensors (0 = refined, 1 = real)
        with torch.no_grad():
            hw = self.D(torch.zeros(1, C, H, W)).shape[2:]
        self.patch_hw = tuple(hw)
        L = torch.long
        self.y_real_b = torch.ones((b,) + self.patch_hw, dtype=L)
        self.y_d = torch.cat(
            [torch.ones((b,) + self.patch_hw, dtype=L), torch.zeros((b,) + self.patch_hw, dtype=L)]
        )

        R_, D_, lam = self.R, self.D, args.lam

        def r_loss(syn, y_real):
            ref = R_(syn)
            logits = D_(ref)
            adv = F.cross_entropy(logits, y_real)
            reg = lam * (ref - syn).abs().sum() / syn.shape[0]
            return adv + reg, adv.detach(), reg.detach()

        def refine(syn):
            return R_(syn)

        def d_loss(x, y):
            logits = D_(x)
            loss = F.cross_entropy(logits, y)
            acc = (logits.argmax(1) == y).float().mean()
            return loss, acc.detach()

        base = variant[:-3] if self.cl else variant
        self.compiled = base != "eager"
        if base == "eager":
            pass
        elif base in ("compile", "compile_freeze"):
            r_loss = torch.compile(r_loss)
            refine = torch.compile(refine)
            d_loss = torch.compile(d_loss)
        elif base == "maxautotune":
            m = "max-autotune-no-cudagraphs"
            r_loss = torch.compile(r_loss, mode=m)
            refine = torch.compile(refine, mode=m)
            d_loss = torch.compile(d_loss, mode=m)
        else:
            raise SystemExit(f"unknown variant {variant}")
        self.r_loss, self.refine_fn, self.d_loss = r_loss, refine, d_loss

    def to_mf(self, x):
        return x.contiguous(memory_format=self.mf) if self.cl else x

    def refiner_update(self, syn):
        self.opt_R.zero_grad(set_to_none=True)
        loss, adv, reg = self.r_loss(syn, self.y_real_b)
        # only R's parameters get gradients; D is frozen for this update
        loss.backward(inputs=self.r_params)
        self.opt_R.step()
        return adv, reg

    def disc_update(self, syn, real):
        torch = self.torch
        h = self.half
        with torch.no_grad():
            new = self.refine_fn(syn)
            if self.buffer.n >= h:
                hist = self.buffer.sample(h)
            else:  # buffer still (nearly) empty: use fresh refined images
                hist = new[h:]
            fake = torch.cat([new[:h], hist])
            self.buffer.push(new[:h])
            x = self.to_mf(torch.cat([real, fake]))
        self.opt_D.zero_grad(set_to_none=True)
        loss, acc = self.d_loss(x, self.y_d)
        loss.backward()
        self.opt_D.step()
        return loss, acc

    def step(self, batches):
        """batches: iterator yielding (syn, real) of batch size b."""
        for _ in range(self.args.kg):
            syn, _ = next(batches)
            adv, reg = self.refiner_update(self.to_mf(syn))
        for _ in range(self.args.kd):
            syn, real = next(batches)
            dl, acc = self.disc_update(self.to_mf(syn), self.to_mf(real))
        return {
            "r_adv": float(adv),
            "r_reg": float(reg),
            "d_loss": float(dl.detach()),
            "d_acc": float(acc),
        }


def batch_iter(syn_pool, real_pool, b):
    n = syn_pool.shape[0]
    i = 0
    while True:
        if i + b > n:
            i = 0
        yield syn_pool[i : i + b], real_pool[i : i + b]
        i += b


# ----------------------------------------------------------------------------
# FLOP accounting
# ----------------------------------------------------------------------------
def conv_macs_per_image(torch, model, C, H, W):
    """Sum over Conv2d layers of Hout*Wout*Cout*(Cin/groups)*kh*kw."""
    rows = []

    def hook(mod, inp, out):
        _, co, ho, wo = out.shape
        kh, kw = mod.kernel_size
        macs = ho * wo * co * (mod.in_channels // mod.groups) * kh * kw
        rows.append((mod._bench_name, tuple(inp[0].shape[1:]), tuple(out.shape[1:]), macs))

    hs = []
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            m._bench_name = name
            hs.append(m.register_forward_hook(hook))
    with torch.no_grad():
        model(torch.zeros(1, C, H, W))
    for h in hs:
        h.remove()
    return rows


def measured_step_flops(torch, args, C, H, W, b):
    """Count FLOPs actually dispatched in one eager training step (convs,
    matmuls; fwd + bwd) with torch.utils.flop_counter."""
    from torch.utils.flop_counter import FlopCounterMode

    g = torch.Generator().manual_seed(1)
    syn, real = make_data(torch, 2 * b, C, H, W, g)
    gan = SimGAN(torch, args, "eager", C, H, W, b)
    it = batch_iter(syn, real, b)
    gan.step(it)  # fill buffer a bit so the sampled path is exercised
    with FlopCounterMode(display=False) as fc:
        gan.step(it)
    tot = fc.get_total_flops()
    with FlopCounterMode(display=False) as fc2:
        with torch.no_grad():
            gan.R(syn[:b])
    return tot, fc2.get_total_flops() / b


def flops_summary(torch, args, C, H, W, b):
    R, D = build(torch, C)
    r_rows = conv_macs_per_image(torch, R, C, H, W)
    d_rows = conv_macs_per_image(torch, D, C, H, W)
    r_macs = sum(r[3] for r in r_rows)
    d_macs = sum(r[3] for r in d_rows)
    kg, kd = args.kg, args.kd
    # Analytic model of one step (conv FLOPs only, 1 MAC = 2 FLOP):
    #   R update: R fwd + R bwd (dgrad+wgrad = 2x fwd, minus the dgrad of the
    #   first conv) + D fwd on b + D dgrad only (D frozen).
    #   D update: R fwd (no grad) on b + D fwd on 2b + D bwd (dgrad+wgrad,
    #   minus first-layer dgrad) on 2b.
    r_first = r_rows[0][3]
    d_first = d_rows[0][3]
    r_upd = r_macs + (2 * r_macs - r_first) + d_macs + (d_macs - d_first)
    d_upd = r_macs + 2 * d_macs + 2 * (2 * d_macs - d_first)
    step_macs_per_b = kg * r_upd + kd * d_upd
    return {
        "refiner_rows": r_rows,
        "disc_rows": d_rows,
        "refiner_macs_per_img": r_macs,
        "disc_macs_per_img": d_macs,
        "refiner_fwd_flops_per_img": 2 * r_macs,
        "disc_fwd_flops_per_img": 2 * d_macs,
        "step_flops_analytic": 2 * step_macs_per_b * b,
        "refiner_params": sum(p.numel() for p in R.parameters()),
        "disc_params": sum(p.numel() for p in D.parameters()),
    }


# ----------------------------------------------------------------------------
# Timing harness
# ----------------------------------------------------------------------------
def timed_reps(fns, args):
    """Run the callables in fns round-robin (one rep of each per round; with
    several variants this interleaves them so slow drifts of machine speed
    hit all of them alike).  A rep is kept only if other processes were
    (nearly) idle during it.  Returns one dict per callable."""
    n = len(fns)
    res = [{"kept": [], "foreign": [], "steal": [], "discarded": 0} for _ in range(n)]
    waited = 0.0
    t_begin = time.time()
    target = args.reps
    # Reps run back to back (like real training); we only pause to wait for
    # the machine to be idle before the first rep and after a discarded one.
    need_wait = True
    while True:
        for i, fn in enumerate(fns):
            r = res[i]
            if target is not None and len(r["kept"]) >= target:
                continue
            if need_wait:
                waited += wait_idle(args.idle_wait, args.max_foreign)
                need_wait = False
            with CpuWatch() as w:
                fn()
            if w.foreign_frac <= args.max_foreign:
                r["kept"].append(w.wall)
                r["foreign"].append(w.foreign_frac)
                r["steal"].append(w.steal_frac)
            else:
                r["discarded"] += 1
                need_wait = True
                print(
                    f"  discarded rep ({w.wall:.2f}s, foreign CPU {w.foreign_frac:.0%})", flush=True
                )
        if target is None and all(r["kept"] for r in res):
            rnd = sum(statistics.median(r["kept"]) for r in res)
            target = int(max(args.min_reps, min(args.max_reps, args.time_budget * n // rnd)))
        if target is not None and all(len(r["kept"]) >= target for r in res):
            break
        tot_disc = sum(r["discarded"] for r in res)
        if tot_disc > n * (3 * max(target or args.min_reps, 1) + 5):
            print("  too many contaminated reps; giving up", flush=True)
            break
        if time.time() - t_begin > 30 * 60:
            break
    for r in res:
        r["waited"] = waited
    return res


def stats(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def env_info(torch, args):
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": cpu,
        "ncpu": _NCPU,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "alloc": os.environ.get("_SIMGAN_ALLOC", "default"),
        "LD_PRELOAD": os.environ.get("LD_PRELOAD"),
        "TORCHINDUCTOR_CACHE_DIR": _USER_INDUCTOR_CACHE,
        "MALLOC_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
        "rusage_user_s": resource.getrusage(resource.RUSAGE_SELF).ru_utime,
        "rusage_sys_s": resource.getrusage(resource.RUSAGE_SELF).ru_stime,
        "minor_faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt,
    }


def _variants(args, allowed):
    vs = [v.strip() for v in args.variant.split(",") if v.strip()]
    for v in vs:
        if v not in allowed:
            raise SystemExit(f"--mode {args.mode} supports {allowed}, got {v}")
    return vs


def _result(r, kept_key="kept"):
    kept = r["kept"]
    return {
        "step_s": stats(kept),
        "times": kept,
        "discarded_reps": r["discarded"],
        "foreign_cpu_max": max(r["foreign"]) if r["foreign"] else None,
        "steal_max": max(r["steal"]) if r["steal"] else None,
        "idle_wait_s": r["waited"],
    }


def run_train(torch, args):
    C, H, W = CONFIGS[args.config]
    b = args.batch
    vs = _variants(args, TRAIN_VARIANTS)
    g = torch.Generator().manual_seed(args.seed)
    syn, real = make_data(torch, 4 * b, C, H, W, g)
    runs = []
    for v in vs:
        gan = SimGAN(torch, args, v, C, H, W, b)
        it = batch_iter(syn, real, b)
        warm = args.warmup if args.warmup is not None else (2 if gan.compiled else 1)
        print(
            f"[train] config={args.config} CxHxW={C}x{H}x{W} b={b} "
            f"kg={args.kg} kd={args.kd} opt={args.opt} variant={v} threads="
            f"{torch.get_num_threads()} D-patches={gan.patch_hw}",
            flush=True,
        )
        losses = []
        t0 = time.perf_counter()
        for i in range(warm):
            losses.append(gan.step(it))
            print(f"  warm-up step {i}: {time.perf_counter() - t0:.1f}s {losses[-1]}", flush=True)
        runs.append(
            {
                "v": v,
                "gan": gan,
                "it": it,
                "losses": losses,
                "warm": warm,
                "warm_s": time.perf_counter() - t0,
            }
        )

    def mk(run):
        return lambda: run["losses"].append(run["gan"].step(run["it"]))

    timed = timed_reps([mk(r) for r in runs], args)
    imgs = (args.kg + args.kd) * b
    fl = flops_summary(torch, args, C, H, W, b)
    out = []
    for run, tr in zip(runs, timed, strict=True):
        kept = tr["kept"]
        if not kept:
            continue
        thr = [imgs / t for t in kept]
        losses = run["losses"]
        res = {
            "mode": "train",
            "config": args.config,
            "C": C,
            "H": H,
            "W": W,
            "batch": b,
            "kg": args.kg,
            "kd": args.kd,
            "opt": args.opt,
            "variant": run["v"],
            "interleaved_with": vs if len(vs) > 1 else [],
            "warmup_steps": run["warm"],
            "warmup_s": run["warm_s"],
            "img_per_s": stats(thr),
            "imgs_per_step": imgs,
            "step_flops_analytic": fl["step_flops_analytic"],
            "refiner_fwd_flops_per_img": fl["refiner_fwd_flops_per_img"],
            "losses_first": losses[0],
            "losses_last": losses[-1],
            "n_steps_total": len(losses),
            "env": env_info(torch, args),
        }
        res.update(_result(tr))
        gf = fl["step_flops_analytic"] / statistics.median(kept) / 1e9
        res["gflops_per_s"] = gf
        print(
            f"  {run['v']:>15s}: step {statistics.median(kept) * 1e3:.0f} ms "
            f"(min {min(kept) * 1e3:.0f}, max {max(kept) * 1e3:.0f}, n="
            f"{len(kept)}, discarded={tr['discarded']}) -> "
            f"{statistics.median(thr):.1f} img/s, {gf:.1f} GFLOP/s (conv)",
            flush=True,
        )
        print(
            f"  {'':>15s}  losses first {losses[0]}\n  {'':>15s}  losses last  {losses[-1]}",
            flush=True,
        )
        out.append(res)
    return out


def run_refine(torch, args):
    import torch._inductor.config as icfg

    C, H, W = CONFIGS[args.config]
    b = args.refine_batch
    vs = _variants(args, REFINE_VARIANTS)
    g = torch.Generator().manual_seed(args.seed)
    syn, _ = make_data(torch, b, C, H, W, g)
    runs = []
    for v in vs:
        gan = SimGAN(torch, args, v, C, H, W, 2)
        gan.R.eval()
        x = gan.to_mf(syn)
        warm = args.warmup if args.warmup is not None else (2 if gan.compiled else 1)
        print(
            f"[refine] config={args.config} CxHxW={C}x{H}x{W} b={b} "
            f"variant={v} threads={torch.get_num_threads()}",
            flush=True,
        )
        t0 = time.perf_counter()
        # inductor freezing (constant-folds / pre-packs weights) is read at
        # compile time, i.e. during the warm-up calls
        with icfg.patch(freezing=v.startswith("compile_freeze")):
            with torch.no_grad():
                for _ in range(warm):
                    out = gan.refine_fn(x)
        warm_s = time.perf_counter() - t0
        with torch.no_grad():
            err = float((out - gan.R(x)).abs().max())
        runs.append({"v": v, "gan": gan, "x": x, "warm": warm, "warm_s": warm_s, "err": err})

    def mk(run):
        def f():
            with torch.no_grad():
                run["gan"].refine_fn(run["x"])

        return f

    timed = timed_reps([mk(r) for r in runs], args)
    fl = flops_summary(torch, args, C, H, W, b)
    out = []
    for run, tr in zip(runs, timed, strict=True):
        kept = tr["kept"]
        if not kept:
            continue
        thr = [b / t for t in kept]
        gf = fl["refiner_fwd_flops_per_img"] * b / statistics.median(kept) / 1e9
        res = {
            "mode": "refine",
            "config": args.config,
            "C": C,
            "H": H,
            "W": W,
            "batch": b,
            "variant": run["v"],
            "interleaved_with": vs if len(vs) > 1 else [],
            "warmup_steps": run["warm"],
            "warmup_s": run["warm_s"],
            "img_per_s": stats(thr),
            "max_abs_diff_vs_eager": run["err"],
            "refiner_fwd_flops_per_img": fl["refiner_fwd_flops_per_img"],
            "gflops_per_s": gf,
            "env": env_info(torch, args),
        }
        res.update(_result(tr))
        print(
            f"  {run['v']:>17s}: {statistics.median(kept) * 1e3:.0f} ms/batch "
            f"(min {min(kept) * 1e3:.0f}, max {max(kept) * 1e3:.0f}, n="
            f"{len(kept)}, discarded={tr['discarded']}) -> "
            f"{statistics.median(thr):.1f} img/s, {gf:.1f} GFLOP/s; "
            f"max|diff| vs eager {run['err']:.2e}",
            flush=True,
        )
        out.append(res)
    return out


def run_flops(torch, args):
    C, H, W = CONFIGS[args.config]
    b = args.batch
    fl = flops_summary(torch, args, C, H, W, b)
    meas, meas_fwd = measured_step_flops(torch, args, C, H, W, b)
    print(f"config={args.config} {C}x{H}x{W} b={b} kg={args.kg} kd={args.kd}")
    print(f"params: refiner {fl['refiner_params']}, disc {fl['disc_params']}")
    for title, rows in (("Refiner", fl["refiner_rows"]), ("Discriminator", fl["disc_rows"])):
        print(f"{title} (per image):")
        for name, i, o, m in rows:
            print(f"  {name:16s} in {str(i):16s} out {str(o):16s} {m / 1e6:10.3f} MMAC")
    print(
        f"Refiner fwd per image: {fl['refiner_macs_per_img'] / 1e6:.2f} MMAC = "
        f"{fl['refiner_fwd_flops_per_img'] / 1e9:.4f} GFLOP "
        f"(flop_counter: {meas_fwd / 1e9:.4f})"
    )
    print(
        f"Disc fwd per image:    {fl['disc_macs_per_img'] / 1e6:.3f} MMAC = "
        f"{fl['disc_fwd_flops_per_img'] / 1e9:.5f} GFLOP"
    )
    print(
        f"Training step (b={b}): analytic {fl['step_flops_analytic'] / 1e9:.1f} "
        f"GFLOP, flop_counter (eager, as dispatched) {meas / 1e9:.1f} GFLOP; "
        f"per refined image ((kg+kd)*b): "
        f"{meas / ((args.kg + args.kd) * b) / 1e9:.3f} GFLOP"
    )
    res = {
        "mode": "flops",
        "config": args.config,
        "batch": b,
        "kg": args.kg,
        "kd": args.kd,
        "refiner_fwd_flops_per_img": fl["refiner_fwd_flops_per_img"],
        "disc_fwd_flops_per_img": fl["disc_fwd_flops_per_img"],
        "step_flops_analytic": fl["step_flops_analytic"],
        "step_flops_counted": meas,
        "refiner_params": fl["refiner_params"],
        "disc_params": fl["disc_params"],
    }
    return res


def run_check(torch, args):
    """Train on a fixed small data set and print losses: the refiner's L1
    term and D's loss/accuracy must move, i.e. the loop really trains."""
    C, H, W = CONFIGS[args.config]
    b = args.check_batch
    g = torch.Generator().manual_seed(args.seed)
    syn, real = make_data(torch, 4 * b, C, H, W, g)
    gan = SimGAN(torch, args, args.variant, C, H, W, b)
    it = batch_iter(syn, real, b)
    p0 = [p.detach().clone() for p in gan.R.parameters()]
    q0 = [p.detach().clone() for p in gan.D.parameters()]
    hist = []
    for i in range(args.check_steps):
        loss = gan.step(it)
        hist.append(loss)
        if i % max(1, args.check_steps // 12) == 0 or i == args.check_steps - 1:
            print(
                f"  step {i:4d}  R adv {loss['r_adv']:.4f}  R reg {loss['r_reg']:.4f}"
                f"  D loss {loss['d_loss']:.4f}  D acc {loss['d_acc']:.3f}  "
                f"buffer {gan.buffer.n}",
                flush=True,
            )
    dR = max(
        float((a - p.detach()).abs().max()) for a, p in zip(p0, gan.R.parameters(), strict=True)
    )
    dD = max(
        float((a - p.detach()).abs().max()) for a, p in zip(q0, gan.D.parameters(), strict=True)
    )
    print(f"  max |param change|: R {dR:.3e}, D {dD:.3e}")
    return {
        "mode": "check",
        "config": args.config,
        "variant": args.variant,
        "batch": b,
        "opt": args.opt,
        "lr": args.lr,
        "steps": len(hist),
        "first": hist[0],
        "last": hist[-1],
        "dR": dR,
        "dD": dD,
    }


# ----------------------------------------------------------------------------
# refinekit back to back (--vs-refinekit)
# ----------------------------------------------------------------------------
def refinekit_bench(args):
    """images/s of `refinekit bench --json` with this reference's networks (refinekit's
    `gaze` preset), size, batch, Kg and Kd, in a child process."""
    exe = shutil.which(args.refinekit)
    if exe is None:
        raise SystemExit(
            f"{args.refinekit!r} not found: install refinekit (pip install -e .) "
            "or pass --refinekit"
        )
    C, H, W = CONFIGS[args.config]
    cmd = [
        exe,
        "bench",
        "--mode",
        args.mode,
        "--preset",
        "gaze",
        "--size",
        str(H),
        str(W),
        "--channels",
        str(C),
        "--batch-size",
        str(args.batch),
        "--refine-batch",
        str(args.refine_batch),
        "--kg",
        str(args.kg),
        "--kd",
        str(args.kd),
        "--repeats",
        str(args.refinekit_repeats),
        "--json",
    ]
    # refinekit as its users run it: without this script's allocator settings
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("LD_PRELOAD", "_SIMGAN_ALLOC") and not k.startswith("MALLOC_")
    }
    print("[refinekit] " + " ".join(["refinekit"] + cmd[1:]), flush=True)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"refinekit bench failed ({done.returncode}):\n{done.stderr}")
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    ips = [r["images_per_second"] for r in rows if r.get("mode") == args.mode]
    if not ips:
        raise SystemExit(f"no {args.mode} result in refinekit bench's output:\n{done.stdout}")
    print(f"  refinekit: {ips[0]:.1f} img/s", flush=True)
    return ips[0]


def print_ratios(mode, rk, res):
    """rk: refinekit's images/s before and after; res: this script's results."""
    rk_mean = statistics.mean(rk)
    print(
        f"refinekit {mode}: {rk_mean:.1f} img/s (before {rk[0]:.1f}, after {rk[1]:.1f})",
        flush=True,
    )
    for r in res:
        pt = r["img_per_s"]["median"]
        r["refinekit_img_per_s"] = rk
        r["ratio_refinekit_to_torch"] = rk_mean / pt
        print(
            f"  vs PyTorch {r['variant']:>17s} {pt:7.1f} img/s: "
            f"refinekit / PyTorch = {rk_mean / pt:.2f}x",
            flush=True,
        )
    if res:
        best = max(r["img_per_s"]["median"] for r in res)
        print(f"  vs the best PyTorch variant: {rk_mean / best:.2f}x", flush=True)


# ----------------------------------------------------------------------------
def report(path):
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    out = [
        "| mode | config | b | variant | alloc | thr | notes | img/s median "
        "| min | max | ms/iter median | n (disc.) | GFLOP/s | % of peak "
        "| warm-up s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["mode"] not in ("train", "refine"):
            continue
        ip = r["img_per_s"]
        env = r.get("env", {})
        gf = r.get("gflops_per_s", float("nan"))
        notes = []
        if r.get("opt", "sgd") != "sgd":
            notes.append(r["opt"])
        if r.get("interleaved_with"):
            notes.append("interleaved")
        cdir = env.get("TORCHINDUCTOR_CACHE_DIR") or ""
        if cdir and not os.path.basename(cdir).startswith("torchinductor_"):
            notes.append("cold compile cache")
        out.append(
            f"| {r['mode']} | {r['config']} {r['C']}x{r['H']}x{r['W']} | "
            f"{r['batch']} | {r['variant']} | "
            f"{env.get('alloc', r.get('alloc', '?'))} | "
            f"{env.get('threads', r.get('threads', '?'))} | "
            f"{', '.join(notes)} | "
            f"{ip['median']:.1f} | {ip['min']:.1f} | {ip['max']:.1f} | "
            f"{r['step_s']['median'] * 1e3:.0f} | {r['step_s']['n']} "
            f"({r['discarded_reps']}) | {gf:.0f} | {100 * gf / PEAK_GFLOPS:.0f} | "
            f"{r['warmup_s']:.0f} |"
        )
    print("\n".join(out))


def main(argv=None):
    args = parse_args(argv)
    want = ALLOCATORS[args.alloc]
    if want and os.environ.get("_SIMGAN_ALLOC") != args.alloc:
        if "LD_PRELOAD" in want and not os.path.exists(want["LD_PRELOAD"]):
            raise SystemExit(
                f"{want['LD_PRELOAD']} missing (apt-get install "
                "libjemalloc2 / libgoogle-perftools4)"
            )
        env = dict(os.environ, _SIMGAN_ALLOC=args.alloc, **want)
        os.execve(sys.executable, [sys.executable] + sys.argv, env)
    if args.report:
        report(args.report)
        return
    import torch

    torch.set_num_threads(args.threads)
    compare = args.vs_refinekit and args.mode in ("train", "refine")
    rk = [refinekit_bench(args)] if compare else []
    if args.mode == "train":
        res = run_train(torch, args)
    elif args.mode == "refine":
        res = run_refine(torch, args)
    elif args.mode == "flops":
        res = run_flops(torch, args)
    else:
        res = run_check(torch, args)
    if compare:
        rk.append(refinekit_bench(args))
        print_ratios(args.mode, rk, res)
    for r in res if isinstance(res, list) else [res]:
        r["argv"] = sys.argv[1:]
        r["timestamp"] = time.strftime("%Y-%m-%d %H:%M:%S")
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
