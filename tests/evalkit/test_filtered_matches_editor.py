"""Filtered pass@1 is what the editor shows: ``eval score`` must report, for every n, the mean
over all n-subsets of a problem's samples of the hidden-test verdict of the candidate the LSP's
own pipeline (``server.postprocess``, ``server.doctest_filter``, ``server.ranking``) puts first."""

from __future__ import annotations

import itertools
import json

import pytest

from evalkit import sandbox
from evalkit.data import load_dataset
from model.protocol import Candidate
from server.cli import main
from server.context import find_completion_site
from server.doctest_filter import extract_examples, run_examples
from server.postprocess import clean_candidates
from server.ranking import rank_candidates

PROBLEM = load_dataset("humaneval").by_id()["HumanEval/0"]  # has_close_elements, 2 examples
CANONICAL = PROBLEM.canonical_solution
PAIRS = (
    "    for i in range(len(numbers)):\n"
    "        for j in range(i + 1, len(numbers)):\n"
    "            if abs(numbers[i] - numbers[j]) < threshold:\n"
    "                return True\n"
    "    return False\n"
)

# (completion, token log-probs, finish reason): what a backend could have sent.
SAMPLES: list[tuple[str, list[float], str]] = [
    # Passes both examples, fails the hidden tests, and is the likeliest: the filter's trap.
    ("    return len(numbers) > 5\n", [-0.02, -0.02], "stop"),
    # Cut by the token limit: the raw text does not compile, the shown (salvaged) body passes.
    (PAIRS + "    x = (", [-0.05, -0.05], "length"),
    ("    return True\n", [-0.1], "stop"),  # one example of two
    ("    return False\n", [-0.2], "stop"),  # one example of two
    # Correct, with code after the function that fails when run: the editor never shows it.
    (CANONICAL + "\n\nprint(has_close_elements([1.0], 0.5))\nassert False\n", [-0.3], "stop"),
    ("    return (\n", [-0.01], "stop"),  # never compiles: dropped
    (CANONICAL, [-0.9, -0.9], "stop"),
    ("    # compare every pair\n" + CANONICAL, [-0.95], "stop"),  # a duplicate of the above
    (PAIRS.replace("i + 1", "i+1"), [], "stop"),  # correct, but no log-probs: ranked last
]


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("filtered")
    rows = [
        {
            "task_id": PROBLEM.task_id,
            "completion": text,
            "token_logprobs": logprobs,
            "mean_logprob": sum(logprobs) / len(logprobs) if logprobs else None,
            "finish_reason": finish,
        }
        for text, logprobs, finish in SAMPLES
    ]
    samples = tmp / "samples.jsonl"
    samples.write_text("".join(json.dumps(row) + "\n" for row in rows))
    argv = ["eval", "score", str(samples), "--out", str(tmp / "run"), "--no-progress"]
    assert main([*argv, "--allow-partial"]) == 0
    return json.loads((tmp / "run" / "summary.json").read_text())


def editor_curve() -> dict[int, float]:
    """For each n: the mean, over every n-subset, of whether the LSP's top candidate passes."""
    lines = PROBLEM.prompt.split("\n")
    site = find_completion_site(PROBLEM.prompt, len(lines) - 1, 0)
    assert site is not None
    candidates = [Candidate(text, tuple(lp), finish) for text, lp, finish in SAMPLES]  # type: ignore[arg-type]
    sources = sorted(
        {clean.source for candidate in candidates for clean in clean_candidates(site, [candidate])}
    )
    examples = extract_examples(site.docstring)
    outcomes = dict(
        zip(sources, run_examples(site.module_context, sources, examples, timeout_s=5), strict=True)
    )
    verdicts = sandbox.check_many(
        [(site.module_context + source, PROBLEM.test_program()) for source in sources]
    )
    passes = {source: v.status == "passed" for source, v in zip(sources, verdicts, strict=True)}
    curve = {}
    for n in (1, 2, 4, 8, len(SAMPLES)):
        picks = []
        for subset in itertools.combinations(candidates, n):
            shown = clean_candidates(site, list(subset))
            ranked = rank_candidates(shown, [outcomes[clean.source] for clean in shown])
            picks.append(bool(ranked) and passes[ranked[0].source])
        curve[n] = sum(picks) / len(picks)
    return curve


def test_filtered_pass_at_1_is_the_editors_pick_for_every_n(scored: dict) -> None:
    expected = editor_curve()
    assert scored["filter_n"] == scored["filtered_at_n"] == 4
    assert scored["filtered_pass@1"] == pytest.approx(expected[4])
    assert list(scored["filtered_pass@1_curve"]) == ["1", "2", "4", "8", "9"]
    for n, value in expected.items():
        assert scored["filtered_pass@1_curve"][str(n)] == pytest.approx(value), n
    # The trap makes n matter: the more samples ranked, the likelier it is among them and shown
    # (at n=9 always); which is why the headline is taken at the editor's n, not at all samples.
    assert expected[2] > expected[1] > expected[8] > expected[9] == 0.0


def test_the_shown_body_is_judged_not_the_raw_sample(scored: dict) -> None:
    # Raw, only the two canonical copies and the no-log-prob body pass; shown, the salvaged and
    # the cut bodies pass too, and the body that never compiles is never shown.
    assert scored["pass@1"] == pytest.approx(3 / 9)
    assert scored["filtered_pass@1_curve"]["1"] == pytest.approx(5 / 9)
    assert scored["shown_counts"] == {"kept": 8, "rewritten": 2, "dropped": 1}
