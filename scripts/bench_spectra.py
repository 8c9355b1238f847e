"""Side-by-side benchmark: strata spectra vs a loop of torch.linalg.svdvals on PyTorch CPU.

The matrices: a random GPT-2-small-shaped checkpoint, 48 f32 matrices (12 layers of
attn.c_attn 768x2304, attn.c_proj 768x768, mlp.c_fc 768x3072, mlp.c_proj 3072x768), N(0, 0.02^2),
written once to a safetensors file; or, with --model FILE, every 2-D tensor of a real
checkpoint. Both sides run in their own process with the same thread
count; each reports the best of --repeats runs. Accuracy is measured against numpy's f64 SVD
of the same f32 matrices; peak memory is each process's maximum resident set size.

Usage (from the repository root):
    cargo build --release -p strata-spectra --example bench_spectra
    .venv/bin/python scripts/bench_spectra.py --threads 2 \
        --strata target/release/examples/bench_spectra

Needs numpy, torch and GNU time (/usr/bin/time) for the peak-memory figures.
"""

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPES = {
    "attn.c_attn.weight": (768, 2304),
    "attn.c_proj.weight": (768, 768),
    "mlp.c_fc.weight": (768, 3072),
    "mlp.c_proj.weight": (3072, 768),
}
N_LAYERS = 12


def make_matrices(seed):
    rng = np.random.default_rng(seed)
    return {
        f"h.{layer}.{name}": (0.02 * rng.standard_normal(shape)).astype(np.float32)
        for layer in range(N_LAYERS)
        for name, shape in SHAPES.items()
    }


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name]).tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def read_matrices(path):
    """The 2-D F32/F16 tensors of a safetensors file, by name, as f32 arrays."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    dtypes = {"F32": np.float32, "F16": np.float16}
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or len(info["shape"]) != 2 or info["dtype"] not in dtypes:
            continue
        start, end = info["data_offsets"]
        arr = np.frombuffer(raw[8 + n + start : 8 + n + end], dtype=dtypes[info["dtype"]])
        out[name] = arr.reshape(info["shape"]).astype(np.float32)
    return out


def run_child(cmd, env, tmp):
    """Runs cmd, returns (stdout, peak RSS in MiB) of that process alone.

    The peak RSS comes from GNU time: a child spawned straight from this process would inherit
    this process's own high-water mark (the kernel carries it across exec).
    """
    rss_file = tmp / "rss.txt"
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(rss_file)] + cmd,
                          stdout=subprocess.PIPE, env=env, check=False)
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed with {proc.returncode}")
    return proc.stdout.decode(), int(rss_file.read_text().split()[-1]) / 1024


def torch_worker(path, threads, repeats, out):
    """Child mode: time torch.linalg.svdvals over every matrix of the file."""
    import torch

    torch.set_num_threads(threads)
    matrices = read_matrices(path)
    mats = [torch.from_numpy(matrices[name]) for name in sorted(matrices)]
    torch.linalg.svdvals(mats[0][:64, :64])  # load the LAPACK path once
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        values = [torch.linalg.svdvals(m) for m in mats]
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    np.concatenate([v.double().numpy() for v in values]).tofile(out)
    print(json.dumps({"seconds": best, "cpu_seconds": best_cpu, "torch": torch.__version__,
                      "threads": torch.get_num_threads()}))


def max_rel_errors(values, reference_list):
    """Max relative errors of s_max, s_min, kappa and of every s_i (relative to itself)."""
    errs = {"s_max": 0.0, "s_min": 0.0, "kappa": 0.0, "all_singular_values": 0.0}
    offset = 0
    for ref in reference_list:
        got = values[offset : offset + len(ref)]
        offset += len(ref)
        errs["s_max"] = max(errs["s_max"], abs(got[0] - ref[0]) / ref[0])
        errs["s_min"] = max(errs["s_min"], abs(got[-1] - ref[-1]) / ref[-1])
        kappa, ref_kappa = got[0] / got[-1], ref[0] / ref[-1]
        errs["kappa"] = max(errs["kappa"], abs(kappa - ref_kappa) / ref_kappa)
        errs["all_singular_values"] = max(errs["all_singular_values"], float(np.max(np.abs(got - ref) / ref)))
    assert offset == len(values), "value count mismatch"
    return errs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strata", default="target/release/examples/bench_spectra")
    parser.add_argument("--model", help="benchmark this .safetensors file instead of the random GPT-2-small set")
    parser.add_argument("--omp-spin", action="store_true",
                        help="keep OpenMP's default spin-waiting for PyTorch (fair only on an idle machine)")
    parser.add_argument("--torch-worker", nargs=2, metavar=("FILE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker:
        return torch_worker(args.torch_worker[0], args.threads, args.repeats, args.torch_worker[1])

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.model:
            model = Path(args.model)
            description = f"every 2-D tensor of {model}"
        else:
            model = tmp / "model.safetensors"
            write_safetensors(model, make_matrices(args.seed))
            description = f"48 f32 matrices, GPT-2-small shapes, N(0, 0.02^2), seed {args.seed}"
        model_size = model.stat().st_size
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
                   RAYON_NUM_THREADS=str(args.threads))
        if not args.omp_spin:
            # On a shared, loaded machine MKL's spinning OpenMP threads lose their cores and one
            # 768x3072 svdvals takes 10 s instead of 0.6 s: let idle threads sleep instead.
            env.update(OMP_WAIT_POLICY="PASSIVE", KMP_BLOCKTIME="0")

        def strata_cmd(repeats):
            return [args.strata, str(model), "--threads", str(args.threads), "--repeats", str(repeats),
                    "--singular-values", str(tmp / "strata.bin")]

        def torch_cmd(repeats):
            return [sys.executable, __file__, "--threads", str(args.threads), "--repeats", str(repeats),
                    "--torch-worker", str(model), str(tmp / "torch.bin")]

        # Timings: best of --repeats runs, the two sides alternating in one session.
        strata = json.loads(run_child(strata_cmd(args.repeats), env, tmp)[0])
        torch_run = json.loads(run_child(torch_cmd(args.repeats), env, tmp)[0])
        # Peak memory: one pass each, in fresh processes (repeats only add allocator slack).
        strata_rss = run_child(strata_cmd(1), env, tmp)[1]
        torch_rss = run_child(torch_cmd(1), env, tmp)[1]

        matrices = read_matrices(model)
        names = sorted(matrices)
        assert strata["units"] == names, "strata analysed a different set of matrices"
        print("computing the numpy f64 reference ...", file=sys.stderr)
        reference = [np.linalg.svd(matrices[n].astype(np.float64), compute_uv=False) for n in names]
        strata_err = max_rel_errors(np.fromfile(tmp / "strata.bin"), reference)
        torch_err = max_rel_errors(np.fromfile(tmp / "torch.bin"), reference)

    report = {
        "matrices": description,
        "threads": args.threads,
        "omp_wait_policy": "default (spin)" if args.omp_spin else "PASSIVE, KMP_BLOCKTIME=0",
        "load_average_1m": round(os.getloadavg()[0], 2),
        "torch_version": torch_run["torch"],
        "torch_svdvals_seconds": round(torch_run["seconds"], 3),
        "strata_singular_values_seconds": round(strata["seconds_singular_values"], 3),
        "strata_full_metrics_seconds": round(strata["seconds_full"], 3),
        "speedup_singular_values": round(torch_run["seconds"] / strata["seconds_singular_values"], 2),
        "speedup_full_metrics": round(torch_run["seconds"] / strata["seconds_full"], 2),
        # CPU seconds over all threads: the work done, less sensitive to other load.
        "torch_svdvals_cpu_seconds": round(torch_run["cpu_seconds"], 3),
        "strata_singular_values_cpu_seconds": round(strata["cpu_seconds_singular_values"], 3),
        "cpu_ratio_singular_values": round(torch_run["cpu_seconds"] / strata["cpu_seconds_singular_values"], 2),
        "strata_svd_fallbacks": strata["n_svd_fallback"],
        "strata_max_rel_error_vs_numpy_f64": strata_err,
        "torch_f32_max_rel_error_vs_numpy_f64": torch_err,
        "n_matrices": len(names),
        "model_file_mib": round(model_size / 2**20, 1),
        "strata_peak_rss_mib_one_pass": round(strata_rss, 1),
        "torch_peak_rss_mib_one_pass": round(torch_rss, 1),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
