#!/usr/bin/env python3
"""Forward throughput of strata (Flex backend) against HF transformers (eager, fp32, PyTorch
CPU) on the same GPT-2-small-shaped random checkpoint, side by side in one run, with the
same number of threads. Also measures strata's peak resident memory while loading.

    python3 scripts/bench_forward.py [--threads 2] [--batch 4] [--seq 256] [--iters 5]

Needs torch and transformers (a venv: python3 -m venv .venv && .venv/bin/pip install torch
transformers). `cargo xtask bench-compare forward` runs this script. Writes
target/bench/forward.json.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "target", "bench", "gpt2-small-random")
EXAMPLE = os.path.join(ROOT, "target", "release", "examples", "forward_throughput")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--iters", type=int, default=5)
    args = ap.parse_args()

    subprocess.run(["cargo", "build", "--release", "--example", "forward_throughput"], cwd=ROOT, check=True)
    if not os.path.exists(os.path.join(MODEL, "model.safetensors")):
        subprocess.run([EXAMPLE, "write-random", MODEL], check=True)
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))

    import torch
    import transformers
    torch.set_num_threads(args.threads)
    model = transformers.GPT2LMHeadModel.from_pretrained(MODEL, attn_implementation="eager").eval()
    ids = torch.randint(0, model.config.vocab_size, (args.batch, args.seq), generator=torch.Generator().manual_seed(1))
    times = []
    with torch.no_grad():
        model(input_ids=ids)
        for _ in range(args.iters):
            t = time.perf_counter()
            model(input_ids=ids)
            times.append(time.perf_counter() - t)
    torch_tps = args.batch * args.seq / statistics.median(times)
    del model

    out = subprocess.run([EXAMPLE, "time", MODEL, str(args.batch), str(args.seq), str(args.iters)],
                         env=env, check=True, capture_output=True, text=True).stdout
    strata = json.loads(out.strip().splitlines()[-1])

    mem = subprocess.run(["/usr/bin/time", "-v", EXAMPLE, "load", MODEL], env=env, check=True,
                         capture_output=True, text=True).stderr
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", mem).group(1))
    weight_bytes = os.path.getsize(os.path.join(MODEL, "model.safetensors"))

    result = {
        "threads": args.threads, "batch": args.batch, "seq": args.seq, "iters": args.iters,
        "torch": torch.__version__, "transformers": transformers.__version__,
        "torch_tokens_per_s": round(torch_tps, 1),
        "strata_tokens_per_s": strata["tokens_per_s"],
        "strata_tokens_per_s_capture_resid_post": strata["tokens_per_s_capture_resid_post"],
        "ratio_strata_over_torch": round(strata["tokens_per_s"] / torch_tps, 3),
        "capture_overhead": round(strata["median_s_capture"] / strata["median_s"] - 1.0, 4),
        "load_peak_rss_bytes": peak_kb * 1024,
        "weight_bytes": weight_bytes,
        "load_peak_over_weights": round(peak_kb * 1024 / weight_bytes, 3),
    }
    os.makedirs(os.path.join(ROOT, "target", "bench"), exist_ok=True)
    with open(os.path.join(ROOT, "target", "bench", "forward.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
