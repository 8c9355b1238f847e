#!/usr/bin/env python3
"""Check that HF transformers loads a strata-exported checkpoint with strata's logits.

Loads MODEL_DIR (default: datasets/models/tiny-default) with
``AutoModelForCausalLM.from_pretrained`` in float32, runs the same token ids through it
and through ``strata capture --sites logits``, and compares the logits with DESIGN.md's
tolerance: max abs error <= 1e-4 * max(1, max|ref|), the HF logits being the reference.

Needs torch, transformers and tokenizers (e.g. the workspace's .venv). Usage:

    .venv/bin/python datasets/models/check_hf_roundtrip.py [MODEL_DIR ...] \
        [--text T] [--strata PATH_TO_STRATA_BINARY] [--json OUT.json]

Without --strata the binary is run through ``cargo run -q -p strata-cli --``. Exits 1 when
a model is outside the tolerance.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import transformers
from safetensors.numpy import load_file
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEXT = "In the beginning God created the heaven and the earth. And the earth was without form, and void;"


def strata_logits(strata_cmd, model_dir, ids):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "logits.safetensors"
        cmd = strata_cmd + [
            "capture",
            "--model", str(model_dir),
            "--token-ids", ",".join(str(i) for i in ids),
            "--sites", "logits",
            "--out", str(out),
        ]
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        return load_file(str(out))["logits"]


def hf_logits(model_dir, ids):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits.numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path,
                        default=[ROOT / "datasets/models/tiny-default"])
    parser.add_argument("--text", default=DEFAULT_TEXT)
    parser.add_argument("--strata", help="path to a built strata binary")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    strata_cmd = [args.strata] if args.strata else ["cargo", "run", "-q", "-p", "strata-cli", "--"]
    torch.manual_seed(0)
    results = []
    ok = True
    for model_dir in args.models:
        model_dir = model_dir.resolve()
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        ids = tokenizer.encode(args.text, add_special_tokens=False).ids
        ref = hf_logits(model_dir, ids)
        got = strata_logits(strata_cmd, model_dir, ids)
        assert ref.shape == got.shape, f"{model_dir}: shapes {ref.shape} vs {got.shape}"
        max_abs = float(np.abs(ref - got).max())
        scale = max(1.0, float(np.abs(ref).max()))
        passed = max_abs <= 1e-4 * scale
        ok &= passed
        result = {
            "model": str(model_dir.relative_to(ROOT)) if model_dir.is_relative_to(ROOT) else str(model_dir),
            "n_tokens": len(ids),
            "max_abs_diff": max_abs,
            "max_abs_ref": float(np.abs(ref).max()),
            "tolerance": 1e-4 * scale,
            "passed": passed,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        }
        results.append(result)
        print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
