"""``docomplete eval chained``: the Codex paper's synthetic benchmark of chained string operations.

Each problem's docstring asks for 1…K simple string manipulations applied one after another
(lower-case, reverse the words, drop every third character, …; 13 building blocks as in the
paper). The hidden tests hold expected outputs computed here by a reference implementation;
the prompt never shows it. Problems are drawn deterministically from a seed and written as a
HumanEval-format JSONL, so any backend runs them through the ordinary runner. This module is
self-contained on purpose: no training-data generator may share its blocks or its inputs.
"""

from __future__ import annotations

import hashlib
import json
import random
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENTRY_POINT = "transform"
TESTS_PER_PROBLEM = 8
CHAINED_JSONL = "chained.jsonl"
CHAINED_CONFIG = "chained_config.json"


@dataclass(frozen=True)
class Block:
    """One building block: how the docstring says it, and the expression that does it on ``s``."""

    name: str
    phrase: str
    expression: str

    def function(self) -> Callable[[str], str]:
        return _FUNCTIONS[self.name]


BLOCKS: tuple[Block, ...] = (
    Block("lower", "convert every letter to lower case", "s.lower()"),
    Block("upper", "convert every letter to upper case", "s.upper()"),
    Block("reverse", "reverse the whole string", "s[::-1]"),
    Block("reverse_words", "reverse the order of the words", "' '.join(s.split()[::-1])"),
    Block(
        "drop_third",
        "remove every third character (the 3rd, 6th, 9th, ...)",
        "''.join(c for i, c in enumerate(s) if i % 3 != 2)",
    ),
    Block(
        "remove_vowels",
        "remove every vowel (a, e, i, o, u, in either case)",
        "''.join(c for c in s if c.lower() not in 'aeiou')",
    ),
    Block("dashes", "replace every space with a dash", "s.replace(' ', '-')"),
    Block("double", "write every character twice", "''.join(c + c for c in s)"),
    Block("sort_words", "sort the words alphabetically", "' '.join(sorted(s.split()))"),
    Block(
        "capitalize_words",
        "make the first letter of every word upper case",
        "' '.join(w[:1].upper() + w[1:] for w in s.split())",
    ),
    Block("letters_only", "keep only the letters", "''.join(c for c in s if c.isalpha())"),
    Block("rotate", "move the first character to the end", "s[1:] + s[:1]"),
    Block("swap_case", "swap the case of every letter", "s.swapcase()"),
)
BLOCKS_BY_NAME = {block.name: block for block in BLOCKS}

# The reference implementation is the blocks' own expressions, compiled once, so the hidden
# tests and the canonical solution can never disagree.
_FUNCTIONS: dict[str, Callable[[str], str]] = {
    block.name: eval(f"lambda s: {block.expression}", {})  # trusted: the constants above
    for block in BLOCKS
}

_WORDS = [
    "apple",
    "banana",
    "cherry",
    "delta",
    "echo",
    "river",
    "stone",
    "cloud",
    "tiger",
    "piano",
    "lemon",
    "orbit",
    "quiet",
    "zebra",
    "mango",
    "night",
    "Hello",
    "World",
    "Python",
    "Code",
    "Data",
    "Green",
    "Ocean",
    "Music",
]


def _random_input(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(2, 5))]
    if rng.random() < 0.4:
        words.insert(rng.randrange(len(words) + 1), str(rng.randint(1, 99)))
    return " ".join(words)


def apply_chain(blocks: Sequence[Block], text: str) -> str:
    """The reference answer: every block in order."""
    for block in blocks:
        text = block.function()(text)
    return text


def _prompt(blocks: Sequence[Block], examples: Sequence[tuple[str, str]]) -> str:
    steps = [f"{i}. {block.phrase}" for i, block in enumerate(blocks, start=1)]
    intro = (
        "Apply the following step to the string s and return the result:"
        if len(blocks) == 1
        else f"Apply the following {len(blocks)} steps to the string s, in this order, "
        "and return the result:"
    )
    lines = textwrap.wrap(intro, width=84) + [f"{step}." for step in steps]
    for given, expected in examples:
        lines += [f">>> {ENTRY_POINT}({given!r})", repr(expected)]
    body = "\n    ".join(lines)
    return f'def {ENTRY_POINT}(s: str) -> str:\n    """{body}\n    """\n'


def make_problem(
    task_id: str, blocks: Sequence[Block], rng: random.Random, examples: int = 0
) -> dict[str, Any]:
    """One HumanEval-format problem chaining ``blocks``; inputs drawn from ``rng``."""
    inputs = [_random_input(rng) for _ in range(TESTS_PER_PROBLEM - 1)] + [rng.choice(_WORDS)]
    shown: list[tuple[str, str]] = []
    while len(shown) < examples:  # examples in the prompt never give away a hidden test
        text = _random_input(rng)
        if text not in inputs:
            shown.append((text, apply_chain(blocks, text)))
    asserts = "".join(
        f"    assert candidate({text!r}) == {apply_chain(blocks, text)!r}\n" for text in inputs
    )
    solution = "".join(f"    s = {block.expression}\n" for block in blocks) + "    return s\n"
    return {
        "task_id": task_id,
        "prompt": _prompt(blocks, shown),
        "entry_point": ENTRY_POINT,
        "canonical_solution": solution,
        "test": f"def check(candidate):\n{asserts}",
        "components": [block.name for block in blocks],
    }


def generate_problems(
    max_components: int, problems_per_k: int, seed: int, examples: int = 0
) -> list[dict[str, Any]]:
    """``problems_per_k`` problems for each chain length 1…``max_components``, from ``seed``."""
    if not 1 <= max_components <= len(BLOCKS):
        raise ValueError(f"--max-components must be between 1 and {len(BLOCKS)}")
    if problems_per_k < 1 or examples < 0:
        raise ValueError("need --problems-per-k >= 1 and --examples >= 0")
    rows = []
    for k in range(1, max_components + 1):
        for i in range(problems_per_k):
            # One stream per problem: adding more problems never changes the earlier ones.
            key = f"{seed}:{k}:{i}".encode()
            rng = random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))
            blocks = rng.sample(BLOCKS, k)
            rows.append(make_problem(f"Chained/{k}/{i}", blocks, rng, examples))
    return rows


def write_dataset(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write the JSONL; an existing file must hold exactly these problems (same settings)."""
    text = "".join(json.dumps(row) + "\n" for row in rows)
    if path.exists():
        if path.read_text() != text:
            raise ValueError(
                f"{path} holds a chained benchmark made with other settings (--seed, "
                "--max-components, --problems-per-k, --examples); pick a new --out"
            )
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def components_of(task_id: str) -> int:
    """``Chained/3/7`` → 3."""
    return int(task_id.split("/")[1])


def chained_payload(
    per_problem: Sequence[dict[str, Any]], *, resamples: int = 2_000, seed: int = 0
) -> dict[str, Any]:
    """Pass rates per number of components, with a bootstrap interval on pass@1."""
    from evalkit.passk import DEFAULT_KS, pass_at_k
    from evalkit.stats import bootstrap_mean_ci

    by_k: dict[int, list[dict[str, Any]]] = {}
    for row in per_problem:
        by_k.setdefault(components_of(str(row["task_id"])), []).append(row)
    smallest = min((int(row["n"]) for row in per_problem), default=0)
    ks = [k for k in DEFAULT_KS if k <= smallest]
    table = []
    for components in sorted(by_k):
        rows = by_k[components]
        entry: dict[str, Any] = {"components": components, "problems": len(rows)}
        for k in ks:
            values = [pass_at_k(int(r["n"]), int(r["correct"]), k) for r in rows]
            entry[f"pass@{k}"] = sum(values) / len(values)
            if k == 1:
                low, high = bootstrap_mean_ci(values, resamples=resamples, seed=seed + components)
                entry["pass@1_ci"] = [low, high]
        picks = [float(r.get("filtered_pick_pass") or 0.0) for r in rows]
        entry["filtered_pass@1"] = sum(picks) / len(picks)
        table.append(entry)
    return {"ks": ks, "rows": table}


def format_chained(payload: dict[str, Any]) -> str:
    """The table ``eval chained`` prints."""
    metrics = [f"pass@{k}" for k in payload["ks"]] + ["filtered_pass@1"]
    header = ["components", "problems", *metrics, "pass@1 95% CI"]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for row in payload["rows"]:
        low, high = row.get("pass@1_ci", [0.0, 0.0])
        cells = [str(row["components"]), str(row["problems"])]
        cells += [f"{100 * row[m]:.1f}%" for m in metrics]
        cells.append(f"[{100 * low:.1f}, {100 * high:.1f}]")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_chained(payload: dict[str, Any], path: Path, title: str) -> None:
    """Pass rate against the number of chained components (Codex Fig. 11)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = payload["rows"]
    xs = [row["components"] for row in rows]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for metric in [f"pass@{k}" for k in payload["ks"]] + ["filtered_pass@1"]:
        ys = [100 * row[metric] for row in rows]
        if metric == "pass@1":
            low = [100 * (row[metric] - row["pass@1_ci"][0]) for row in rows]
            high = [100 * (row["pass@1_ci"][1] - row[metric]) for row in rows]
            ax.errorbar(xs, ys, yerr=[low, high], marker="o", capsize=3, label="pass@1 (95% CI)")
        else:
            style = "--" if metric.startswith("filtered") else "-"
            ax.plot(xs, ys, style, marker="o", label=metric)
    ax.set_xticks(xs)
    ax.set_xlabel("chained components in the docstring")
    ax.set_ylabel("% of problems")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
