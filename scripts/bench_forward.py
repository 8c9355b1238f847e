#!/usr/bin/env python3
"""Forward throughput of strata (Flex backend) against HF transformers (eager, fp32, PyTorch
CPU) on the same checkpoint, side by side in one run, with the same number of threads: a
GPT-2-small-shaped random checkpoint by default, or any HF causal-LM folder given with
--model (for example SmolLM2-135M exported by `strata export`). Also measures strata's peak
resident memory while loading, and with --gguf while loading a GGUF file, against the f32
bytes of its weights.

    python3 scripts/bench_forward.py [--threads 2] [--batch 4] [--seq 256] [--iters 5]
                                     [--model DIR] [--gguf FILE] [--rounds 3]

Needs torch and transformers (a venv: python3 -m venv .venv && .venv/bin/pip install torch
transformers). `cargo xtask bench-compare forward` runs this script. Writes
target/bench/forward.json: the machine and its load average before and after, the versions,
each side's tokens/s and GFLOP/s per round (median, min, max), and both sides' single-GEMM
peak (a 2048 x 2048 f32 product) so the distance to the machine's limit is visible.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

from bench_common import describe, machine, spread

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "target", "bench", "gpt2-small-random")
EXAMPLE = os.path.join(ROOT, "target", "release", "examples", "forward_throughput")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3,
                    help="interleaved rounds of both sides; the medians over rounds are reported")
    ap.add_argument("--model", help="an HF causal-LM folder (default: a random GPT-2-small)")
    ap.add_argument("--gguf", help="also measure peak RSS while strata loads this GGUF file")
    args = ap.parse_args()

    subprocess.run(["cargo", "build", "--release", "--example", "forward_throughput"], cwd=ROOT, check=True)
    model_dir = args.model or MODEL
    if args.model is None and not os.path.exists(os.path.join(MODEL, "model.safetensors")):
        subprocess.run([EXAMPLE, "write-random", MODEL], check=True)
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    machine_before = machine(args.threads)

    import torch
    import transformers
    torch.set_num_threads(args.threads)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        model_dir, attn_implementation="eager", torch_dtype=torch.float32).eval()
    ids = torch.randint(0, model.config.vocab_size, (args.batch, args.seq), generator=torch.Generator().manual_seed(1))

    def torch_round():
        times = []
        with torch.no_grad():
            model(input_ids=ids)
            for _ in range(args.iters):
                t = time.perf_counter()
                model(input_ids=ids)
                times.append(time.perf_counter() - t)
        return args.batch * args.seq / statistics.median(times)

    def strata_round():
        out = subprocess.run([EXAMPLE, "time", model_dir, str(args.batch), str(args.seq), str(args.iters)],
                             env=env, check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    # Interleaved, so that a change in machine load hits both sides alike.
    torch_runs, strata_runs = [], []
    for r in range(args.rounds):
        torch_runs.append(torch_round())
        strata_runs.append(strata_round())
        print(f"round {r + 1}: torch {torch_runs[-1]:.1f} tok/s, strata {strata_runs[-1]['tokens_per_s']:.1f} tok/s",
              file=sys.stderr)
    del model
    ratios = [s["tokens_per_s"] / t for s, t in zip(strata_runs, torch_runs)]
    flops = strata_runs[0]["flops_per_forward"]
    tokens = args.batch * args.seq

    def gflops(tps):
        return flops * tps / tokens / 1e9

    strata_peak = json.loads(subprocess.run([EXAMPLE, "gemm-peak", "2048"], env=env, check=True,
                                            capture_output=True, text=True).stdout.strip().splitlines()[-1])
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(5))
    torch_peak = 2 * 2048 ** 3 / best / 1e9
    strata_tps = spread([s["tokens_per_s"] for s in strata_runs], 1)
    torch_tps = spread(torch_runs, 1)
    print(describe("strata", strata_tps, "tokens/s"), file=sys.stderr)
    print(describe("torch ", torch_tps, "tokens/s"), file=sys.stderr)

    def peak_rss(path):
        mem = subprocess.run(["/usr/bin/time", "-v", EXAMPLE, "load", path], env=env, check=True,
                             capture_output=True, text=True)
        peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", mem.stderr).group(1))
        n_params = json.loads(mem.stdout.strip().splitlines()[-1])["n_params"]
        return peak_kb * 1024, n_params * 4

    peak, weight_bytes = peak_rss(model_dir)
    result = {
        "model": os.path.relpath(model_dir, ROOT) if args.model is None else args.model,
        "machine_before": machine_before, "machine_after": machine(args.threads),
        "threads": args.threads, "batch": args.batch, "seq": args.seq, "iters": args.iters,
        "rounds": args.rounds,
        "torch": torch.__version__, "transformers": transformers.__version__,
        "flops_per_forward": flops,
        "strata_tokens_per_s": strata_tps,
        "torch_tokens_per_s": torch_tps,
        "strata_gflops": round(gflops(strata_tps["median"]), 1),
        "torch_gflops": round(gflops(torch_tps["median"]), 1),
        "gemm_peak_gflops": {"strata_flex": strata_peak["gflops"], "torch": round(torch_peak, 1)},
        "strata_tokens_per_s_capture_resid_post": spread(
            [s["tokens_per_s_capture_resid_post"] for s in strata_runs], 1),
        "ratio_strata_over_torch": spread(ratios, 3),
        "capture_overhead": spread([s["median_s_capture"] / s["median_s"] - 1.0 for s in strata_runs], 4),
        "load_peak_rss_bytes": peak,
        "f32_weight_bytes": weight_bytes,
        "load_peak_over_weights": round(peak / weight_bytes, 3),
    }
    if args.gguf:
        peak, weight_bytes = peak_rss(args.gguf)
        result["gguf"] = args.gguf
        result["gguf_load_peak_rss_bytes"] = peak
        result["gguf_load_peak_over_f32_weights"] = round(peak / weight_bytes, 3)
    os.makedirs(os.path.join(ROOT, "target", "bench"), exist_ok=True)
    with open(os.path.join(ROOT, "target", "bench", "forward.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


def _timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


if __name__ == "__main__":
    sys.exit(main())
