#!/usr/bin/env python3
"""Check that the Python `tokenizers` and `transformers` packages read tokenizer.json as Rust does.

Run from the workspace root, in an environment with `tokenizers` and `transformers`:

    python datasets/tokenizer/check_tokenizer.py

It checks, and exits non-zero on the first failure:
  1. `tokenizers.Tokenizer.from_file` gives exactly the ids that `cargo xtask train-tokenizer`
     wrote to sample_ids.jsonl (valid verses, arithmetic, whitespace, non-ASCII text, and the
     special token inside text), and decodes them back to the text;
  2. `transformers.AutoTokenizer` on this folder gives the same ids, knows <|endoftext|> as
     id 0 for BOS, EOS and padding, and decodes back to the text;
  3. decode(encode(text)) == text for every line of datasets/kjv/valid.txt and for the
     whole file as one string;
  4. for every multiple-choice item in datasets/tasks/, the ids of context + choice start
     with the ids of the context, so a choice's tokens are the tail of the joint encoding.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATASETS = HERE.parent


def fail(message: str) -> None:
    print(f"FAIL: {message}")
    sys.exit(1)


def main() -> None:
    import tokenizers
    import transformers

    samples = [json.loads(line) for line in open(HERE / "sample_ids.jsonl", encoding="utf-8")]

    tok = tokenizers.Tokenizer.from_file(str(HERE / "tokenizer.json"))
    for row in samples:
        ids = tok.encode(row["text"], add_special_tokens=False).ids
        if ids != row["ids"]:
            fail(f"tokenizers {tokenizers.__version__}: {row['text']!r}: {ids} != Rust {row['ids']}")
        if tok.decode(ids, skip_special_tokens=False) != row["text"]:
            fail(f"tokenizers: decode does not invert encode on {row['text']!r}")
    print(f"ok: tokenizers {tokenizers.__version__} gives the Rust ids on {len(samples)} samples")

    hf = transformers.AutoTokenizer.from_pretrained(str(HERE))
    if hf.vocab_size != 4096 or len(hf) != 4096:
        fail(f"transformers: vocabulary {hf.vocab_size} (len {len(hf)}), expected 4096")
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if getattr(hf, name) != 0:
            fail(f"transformers: {name} is {getattr(hf, name)}, expected 0")
    for row in samples:
        ids = hf(row["text"], add_special_tokens=False)["input_ids"]
        if ids != row["ids"]:
            fail(f"transformers {transformers.__version__}: {row['text']!r}: {ids} != Rust {row['ids']}")
        if hf.decode(ids) != row["text"]:
            fail(f"transformers: decode does not invert encode on {row['text']!r}")
    print(f"ok: transformers {transformers.__version__} ({type(hf).__name__}) gives the Rust ids on {len(samples)} samples")

    valid = (DATASETS / "kjv" / "valid.txt").read_text(encoding="utf-8")
    texts = valid.splitlines() + [valid]
    for text in texts:
        if tok.decode(tok.encode(text).ids, skip_special_tokens=False) != text:
            fail(f"round trip fails on {text[:80]!r}")
    print(f"ok: decode(encode(text)) == text on {len(texts) - 1} valid lines and the whole file")

    n_items = 0
    for path in sorted((DATASETS / "tasks").glob("*.jsonl")):
        for line in open(path, encoding="utf-8"):
            item = json.loads(line)
            context_ids = tok.encode(item["context"]).ids
            for choice in item["choices"]:
                joint = tok.encode(item["context"] + choice).ids
                if joint[: len(context_ids)] != context_ids or len(joint) == len(context_ids):
                    fail(f"{path.name} {item['id']}: the choice {choice!r} changes the context's tokens")
            n_items += 1
    print(f"ok: on {n_items} task items, context + choice tokenizes as context then choice")


if __name__ == "__main__":
    main()
