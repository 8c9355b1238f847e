#!/usr/bin/env python3
"""One dense + sparse pass pair of the CETT activation-sparsity measurement, strata (Flex
backend) against PyTorch (HF transformers, eager, fp32, CPU), on the same model and the same
tokens, with the same number of threads, interleaved over several rounds.

A pair is what PPL-p% repeats for every window: a dense forward pass keeping the
`mlp.hook_post` activations (the input of the MLP's down projection) of the label-bearing
tokens; per layer, the CETT threshold for one target (neuron output norms
|a_i| * ||W_out[:, i]||, a 65,536-point linear grid from the smallest norm to the 99th
percentile of a strided subsample, binary search on the mean per-token CETT, about 16
matmuls); and a sparse forward pass with every neuron under its layer's threshold zeroed
before the down projection. The PyTorch side implements this from methods/sparsity.md with
forward pre-hooks on `down_proj`; both sides print the activation ratios they measured, so a
mismatch in what was timed shows.

    python3 scripts/bench_sparsity.py [--threads 2] [--model datasets/models/tiny-default]
                                      [--window 128] [--cett 0.2] [--iters 10] [--rounds 5]

Needs torch and transformers (.venv/bin/python). `cargo xtask bench-compare sparsity` runs
this script. Writes target/bench/sparsity.json.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "target", "release", "examples", "pass_pair")
GRID = 65536
QUANTILE = 0.99


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default=os.path.join(ROOT, "datasets", "models", "tiny-default"))
    ap.add_argument("--window", type=int, default=128, help="tokens of the one window")
    ap.add_argument("--cett", type=float, default=0.2)
    ap.add_argument("--iters", type=int, default=10, help="pairs timed per round (median kept)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds of both sides")
    args = ap.parse_args()

    subprocess.run(["cargo", "build", "--release", "-p", "strata-sparsity", "--example", "pass_pair"],
                   cwd=ROOT, check=True)
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))

    import torch
    import transformers
    torch.set_num_threads(args.threads)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        args.model, attn_implementation="eager", torch_dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, model.config.vocab_size, (1, args.window), generator=g)
    os.makedirs(os.path.join(ROOT, "target", "bench"), exist_ok=True)
    tokens_path = os.path.join(ROOT, "target", "bench", "sparsity_tokens.json")
    with open(tokens_path, "w") as f:
        json.dump(ids[0].tolist(), f)

    layers = model.model.layers
    downs = [layer.mlp.down_proj for layer in layers]
    col_norms = [d.weight.detach().norm(dim=0) for d in downs]  # weight [d_model, d_mlp]

    def threshold(acts, w, col, target):
        norms = acts.abs() * col
        out_norm = (acts @ w.T).norm(dim=1).clamp_min(torch.finfo(torch.float32).tiny)
        flat = norms.reshape(-1)
        stride = max(flat.numel() // GRID, 1)
        lo_v = flat.min()
        hi_v = torch.quantile(flat[::stride], QUANTILE)
        grid = torch.linspace(lo_v.item(), hi_v.item(), GRID)
        lo, hi = 0, GRID - 1
        while lo < hi:
            mid = (lo + hi) // 2
            tail = acts.masked_fill(norms > grid[mid], 0.0)
            cett = ((tail @ w.T).norm(dim=1) / out_norm).mean().item()
            if cett > target:
                hi = mid
            else:
                lo = mid + 1
        return grid[lo - 1 if lo > 0 else 0].item()

    def pair():
        captured = {}
        hooks = [d.register_forward_pre_hook(
            lambda m, inp, l=l: captured.__setitem__(l, inp[0][0, :-1])) for l, d in enumerate(downs)]
        with torch.no_grad():
            dense = model(input_ids=ids, labels=ids).loss
        for h in hooks:
            h.remove()
        with torch.no_grad():
            eps = [threshold(captured[l], downs[l].weight, col_norms[l], args.cett) for l in range(len(downs))]
        counts = [[0, 0] for _ in downs]

        def mask(m, inp, l):
            x = inp[0]
            drop = x.abs() * col_norms[l] < eps[l]
            labelled = drop[0, :-1]
            counts[l][0] += int(labelled.sum())
            counts[l][1] += labelled.numel()
            return (x.masked_fill(drop, 0.0),)

        hooks = [d.register_forward_pre_hook(lambda m, inp, l=l: mask(m, inp, l)) for l, d in enumerate(downs)]
        with torch.no_grad():
            sparse = model(input_ids=ids, labels=ids).loss
        for h in hooks:
            h.remove()
        ratios = [1.0 - d / n for d, n in counts]
        return float(torch.exp(sparse - dense)), ratios

    def torch_round():
        pair()
        times = []
        for _ in range(args.iters):
            t = time.perf_counter()
            ppl_ratio, ratios = pair()
            times.append(time.perf_counter() - t)
        return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
                "ppl_ratio": ppl_ratio, "activation_ratios": ratios}

    def strata_round():
        out = subprocess.run([EXAMPLE, args.model, tokens_path, str(args.cett), str(args.iters)],
                             env=env, check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    # Interleaved, so that a change in machine load hits both sides alike.
    torch_runs, strata_runs = [], []
    for r in range(args.rounds):
        torch_runs.append(torch_round())
        strata_runs.append(strata_round())
        print(f"round {r + 1}: torch {1e3 * torch_runs[-1]['median_s']:.2f} ms, "
              f"strata {1e3 * strata_runs[-1]['median_s']:.2f} ms per pair", file=sys.stderr)
    ratios = [t["median_s"] / s["median_s"] for s, t in zip(strata_runs, torch_runs)]
    load = os.getloadavg()
    result = {
        "model": os.path.relpath(args.model, ROOT) if args.model.startswith(ROOT) else args.model,
        "threads": args.threads, "window": args.window, "cett": args.cett,
        "iters": args.iters, "rounds": args.rounds,
        "torch": torch.__version__, "transformers": transformers.__version__,
        "load_average_1_5_15": [round(v, 2) for v in load],
        "torch_median_s_per_pair": statistics.median(t["median_s"] for t in torch_runs),
        "strata_median_s_per_pair": statistics.median(s["median_s"] for s in strata_runs),
        "speedup_strata_over_torch": round(statistics.median(ratios), 3),
        "speedup_per_round": [round(r, 3) for r in ratios],
        "speedup_spread": [round(min(ratios), 3), round(max(ratios), 3)],
        "torch_activation_ratios": torch_runs[-1]["activation_ratios"],
        "strata_activation_ratios": strata_runs[-1]["activation_ratios"],
        "torch_ppl_ratio": torch_runs[-1]["ppl_ratio"],
        "strata_ppl_ratio": strata_runs[-1]["ppl_ratio"],
    }
    with open(os.path.join(ROOT, "target", "bench", "sparsity.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
