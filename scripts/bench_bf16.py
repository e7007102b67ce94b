"""Benchmark (not a test): bf16 autocast on this CPU against fp32, per training step, side by side.

`compute.cpu_bf16` autocasts training steps to bf16 on CPU (harness/loop.py, Runtime.autocast). This
times a SignMAE step (CTR-GC + MS-TCN extractor, encoder, decoder: the pretrain stage) and a
sign-to-text step (Transformer encoder-decoder over Z) at a profile's sizes on one thread, fp32 and
bf16 in alternating rounds in this one process (so both see the same machine), with the fused
AdamW step the loop uses, and prints the median step times and the ratio. Random inputs of the
stages' shapes: the speed of the kernels, not of a result (for results use
`python -m harness.trial apw apw --set compute.cpu_bf16=true` against the same without).

    python scripts/bench_bf16.py --profile default
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness.builders import build_sign2text, build_signmae  # noqa: E402
from harness.config import load_profile  # noqa: E402
from harness.data.datasets import Vocabulary  # noqa: E402
from harness.loop import make_optimizer  # noqa: E402
from models.layout import CANONICAL  # noqa: E402


def signmae_step(cfg, batch: int):
    model = build_signmae(cfg, 2)
    w, v = cfg.pretrain.window, CANONICAL.num_points
    seg = torch.randn(batch, w, v, 2)  # (B, w, V, C)
    mask = torch.rand(batch, w, v) > 0.02  # (B, w, V)
    weights = torch.ones(batch, v)  # (B, V)
    return model, lambda: model(seg, mask, weights).loss


def sign2text_step(cfg, batch: int):
    words = [f"w{i}" for i in range(60)]
    vocab = Vocabulary(list(Vocabulary.SPECIALS) + words)
    model = build_sign2text(cfg, cfg.pretrain.dim, vocab)
    n, length = 12, 12  # windows per sentence (default corpus: 92 frames, stride 7) and target tokens
    z = torch.randn(batch, n, cfg.pretrain.dim)  # (B, N, D)
    z_mask = torch.ones(batch, n, dtype=torch.bool)  # (B, N): every window valid
    tgt = torch.randint(4, len(vocab.itos), (batch, length + 1))  # (B, L + 1)
    return model, lambda: model(z, z_mask, tgt[:, :-1], tgt[:, 1:]).loss


def time_steps(model, loss_of, cfg, bf16: bool, steps: int) -> float:
    """Median seconds of `steps` training steps (forward, backward, clip, fused AdamW)."""
    opt, _ = make_optimizer(model, cfg.optim, 1000)
    times = []
    for _ in range(steps + 1):  # the first is a warm-up
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_of()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="default")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg = load_profile(args.profile)
    bs = cfg.optim.batch_size
    flags = " ".join(f for f in ("avx512_bf16", "amx_bf16") if f in Path("/proc/cpuinfo").read_text()) or "none"
    print(f"**bf16 autocast vs fp32 per training step, profile {args.profile}, batch {bs}, one thread** "
          f"(CPU bf16 flags: {flags})\n")
    print("| step | fp32 ms | bf16 ms | bf16 / fp32 |\n|---|---:|---:|---:|")
    for name, make in (("SignMAE (pretrain)", signmae_step), ("sign-to-text", sign2text_step)):
        fp32, bf16 = [], []
        for _ in range(args.rounds):
            for flag, out in ((False, fp32), (True, bf16)):
                torch.manual_seed(0)
                model, loss_of = make(cfg, bs)
                out.append(time_steps(model, loss_of, cfg, flag, args.steps))
        a, b = statistics.median(fp32), statistics.median(bf16)
        print(f"| {name} | {1000 * a:.0f} | {1000 * b:.0f} | {b / a:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
