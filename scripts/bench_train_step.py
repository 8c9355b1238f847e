"""Side-by-side benchmark: one training step of the tiny-default model, strata (burn Flex +
Autodiff) vs PyTorch CPU, same model, same batch shape, same optimiser.

The model: `cargo xtask train-tiny default`'s Llama-style architecture (4 layers, width 128,
vocabulary 4096), starting from the same step-0 weights. The batch: 16 sequences of 128
tokens of the KJV training stream. A step is forward, next-token cross-entropy, backward,
per-parameter gradient clipping at norm 1 (burn's `GradientClippingConfig::Norm`) and an
AdamW update. Both sides run on the same CPU threads, one after the other.

- strata: `xtask train-tiny default --steps N` in a scratch folder; each step's time comes
  from the run's `log.jsonl` (training-step time only: no checkpointing or evaluation).
- PyTorch: `LlamaForCausalLM` loaded from that run's `step0/` with transformers (its default
  attention, SDPA), `torch.optim.AdamW`, timed with `time.perf_counter`.

Each round runs both sides one after the other (--rounds rounds, interleaved, so a change in
machine load hits both alike); a side's round is the median of its steps after --warmup
warm-up steps, and the report gives the median and spread over rounds, the machine and its
load average before and after, and the versions.

Usage (from the repository root):
    cargo build --release -p xtask
    .venv/bin/python scripts/bench_train_step.py --threads 2 [--steps 20] [--rounds 3] [--json out.json]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import describe, machine, spread  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def strata_steps(xtask, out, n_steps, threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    cmd = [str(xtask), "train-tiny", "default", "--steps", str(n_steps),
           "--checkpoint-every", str(10 * n_steps), "--out", str(out), "--no-publish",
           "--overwrite"]
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    log = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines() if l.strip()]
    spec = json.loads((out / "run.json").read_text())["spec"]
    tokens = spec["seq_len"] * spec["batch_size"]
    return spec, [tokens / l["tokens_per_second"] for l in log]


def torch_steps(model_dir, spec, n_steps, threads):
    import torch
    import transformers
    from transformers import AutoModelForCausalLM
    from tokenizers import Tokenizer

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=spec["lr"], betas=(spec["beta_1"], spec["beta_2"]),
                            eps=1e-8, weight_decay=spec["weight_decay"])
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    lines = (ROOT / "datasets/kjv/train.txt").read_text().splitlines()
    stream = [0]
    for line in lines[:2000]:
        stream += tok.encode(line, add_special_tokens=False).ids + [0]
    b, t = spec["batch_size"], spec["seq_len"]
    ids = torch.tensor(stream[: b * (t + 1)]).view(b, t + 1)
    inputs, targets = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()
    times = []
    for _ in range(n_steps):
        t0 = time.perf_counter()
        logits = model(inputs).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for p in model.parameters():
            torch.nn.utils.clip_grad_norm_([p], spec["grad_clip_norm"])
        opt.step()
        times.append(time.perf_counter() - t0)
    return times, torch.__version__, transformers.__version__, model.config._attn_implementation


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--xtask", type=Path, default=ROOT / "target/release/xtask")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    machine_before = machine(args.threads)
    strata_rounds, torch_rounds = [], []
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run"
            spec, strata = strata_steps(args.xtask, out, args.steps, args.threads)
            torch_times, torch_version, tf_version, attn = torch_steps(out / "step0", spec, args.steps, args.threads)
        strata_rounds.append(statistics.median(strata[args.warmup:]))
        torch_rounds.append(statistics.median(torch_times[args.warmup:]))
        print(f"round {r + 1}: strata {strata_rounds[-1] * 1e3:.1f} ms, torch {torch_rounds[-1] * 1e3:.1f} ms",
              file=sys.stderr)
    tokens = spec["seq_len"] * spec["batch_size"]
    strata_ms = spread([t * 1e3 for t in strata_rounds], 1)
    torch_ms = spread([t * 1e3 for t in torch_rounds], 1)
    ratio = spread([t / s for s, t in zip(strata_rounds, torch_rounds)], 3)
    result = {
        "model": "tiny-default architecture (llama, 4 layers, d_model 128, vocab 4096)",
        "batch": f"{spec['batch_size']} x {spec['seq_len']} tokens",
        "machine_before": machine_before,
        "machine_after": machine(args.threads),
        "threads": args.threads,
        "steps_timed_per_round": args.steps - args.warmup,
        "rounds": args.rounds,
        "strata_step_ms": strata_ms,
        "torch_step_ms": torch_ms,
        "strata_tokens_per_second": round(tokens / strata_ms["median"] * 1e3),
        "torch_tokens_per_second": round(tokens / torch_ms["median"] * 1e3),
        "speed_ratio_strata_over_torch": ratio,
        "torch": torch_version,
        "transformers": tf_version,
        "torch_attention": attn,
    }
    print(describe("strata step", strata_ms, "ms"))
    print(describe("torch step ", torch_ms, "ms"))
    print(describe("speed ratio strata/torch (torch time / strata time)", ratio, "x"))
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
