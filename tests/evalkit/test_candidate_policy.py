"""The shared candidate policy: a HumanEval prompt gets the editor's site, canonical bodies pass
through untouched, Codex's stop list and the LSP's give the same bodies, and candidates without
log-probs keep the backend's order."""

from __future__ import annotations

import pytest

from evalkit.candidate_policy import (
    STOP_SEQUENCES,
    DoctestOutcome,
    clean_candidate,
    clean_candidates,
    cut_at_stop,
    rank_candidates,
)
from evalkit.data import load_dataset
from evalkit.doctest_runner import extract_examples
from evalkit.prompt_site import site_for_prompt
from evalkit.run_dir import CODEX_STOPS
from model.protocol import Candidate
from server.config import ServerConfig
from server.context import find_completion_site

HUMANEVAL = load_dataset("humaneval")


def test_the_editor_default_n_is_the_headline_n() -> None:
    from evalkit.candidate_policy import DEFAULT_N

    assert ServerConfig().n == DEFAULT_N == 4


def test_every_humaneval_prompt_is_a_body_site_and_canonical_bodies_survive() -> None:
    with_examples = 0
    for problem in HUMANEVAL.problems:
        site = site_for_prompt(problem.prompt, problem.entry_point)
        assert site.function_name == problem.entry_point
        assert (site.def_indent, site.next_line_indent, site.starts_at_line) == ("", "    ", True)
        assert site.module_context + site.function_prefix == problem.prompt
        with_examples += bool(extract_examples(site.docstring or ""))
        clean = clean_candidate(site, Candidate(problem.canonical_solution, (-0.5,), "stop"))
        assert clean is not None, problem.task_id
        # Post-processing only ever touches layout on a correct body (blank-line whitespace).
        assert clean.continuation.split() == problem.canonical_solution.split(), problem.task_id
    assert with_examples == 75  # 76 prompts carry ">>>", one does not parse as a doctest


def test_prompt_site_matches_the_editor_site_at_the_end_of_the_docstring() -> None:
    problem = HUMANEVAL.by_id()["HumanEval/10"]  # a helper function above the entry point
    ours = site_for_prompt(problem.prompt, problem.entry_point)
    lines = problem.prompt.split("\n")
    editor = find_completion_site(problem.prompt, len(lines) - 1, 0)
    assert editor is not None
    for name in ("function_name", "def_indent", "body_indent", "docstring", "function_prefix"):
        assert getattr(ours, name) == getattr(editor, name), name
    assert (ours.next_line_indent, ours.starts_at_line) == ("    ", True)
    assert editor.next_line_indent == "    " and editor.starts_at_line
    assert "def is_palindrome" in ours.module_context  # the helper is the doctest prelude


def test_a_prompt_ending_mid_line_is_continued_on_that_line() -> None:
    site = site_for_prompt('def f():\n    """Doc."""\n    return 1  # ', "f")
    assert not site.starts_at_line and site.next_line_indent == "    "
    clean = clean_candidate(site, Candidate("one\nx = 2\n", (-0.1,), "stop"))
    assert clean is not None and clean.continuation == "one"  # the scope cut still applies


RAW_TAILS = [
    "\n\nif __name__ == '__main__':\n    main()\n",
    "\n\nif True:\n    pass\n",
    "\n# a comment at column 0\nx = 1\n",
    "\nprint(f(1))\n",
    "\nprint\n",
    "\nclass Later:\n    pass\n",
    "\ndef other():\n    pass\n",
    "\n@decorator\ndef g():\n    pass\n",
    "\nassert f(1) == 2\n",
]


@pytest.mark.parametrize("tail", RAW_TAILS)
def test_codex_stops_and_the_lsp_stops_give_the_same_body(tail: str) -> None:
    site = site_for_prompt(HUMANEVAL.problems[2].prompt, HUMANEVAL.problems[2].entry_point)
    raw = "    value = number % 1.0\n\n    return value\n" + tail
    bodies = set()
    for stops in (CODEX_STOPS, STOP_SEQUENCES, ()):
        clean = clean_candidate(site, Candidate(cut_at_stop(raw, stops), (-0.1,), "stop"))
        assert clean is not None
        bodies.add(clean.continuation)
    assert bodies == {"    value = number % 1.0\n\n    return value"}


def test_candidates_without_logprobs_keep_the_backends_order_after_those_with() -> None:
    site = site_for_prompt("def f(x):\n    '''Doc.'''\n", "f")
    raw = [
        Candidate("    return 1\n", (), "stop"),
        Candidate("    return 2\n", (-2.0,), "stop"),
        Candidate("    return 3\n", (), "stop"),
        Candidate("    return 4\n", (-0.5,), "stop"),
        Candidate("    return 1  # same code\n", (-0.1,), "stop"),
    ]
    clean = clean_candidates(site, raw)
    # The duplicate of "return 1" with log-probs is the one kept; no-log-prob ones come last,
    # in the backend's order.
    assert [c.continuation for c in clean] == [
        "    return 1  # same code",
        "    return 4",
        "    return 2",
        "    return 3",
    ]
    ranked = rank_candidates(clean, [DoctestOutcome() for _ in clean])
    assert [r.mean_logprob for r in ranked] == [-0.1, -0.5, -2.0, None]
    assert ranked[-1].as_json()["meanLogprob"] is None
    assert ranked[-1].verdict_text() == "no doctest examples · no log-probs"
    # Passing more examples beats any log-prob, also for a candidate without log-probs.
    outcomes = [DoctestOutcome(0, 1, "failed")] * 3 + [DoctestOutcome(1, 1, "passed")]
    assert rank_candidates(clean, outcomes)[0].continuation == "    return 3"


def test_ranking_is_stable_for_a_backend_that_sends_no_logprobs_at_all() -> None:
    site = site_for_prompt("def f(x):\n    '''Doc.'''\n", "f")
    texts = [f"    return {i}" for i in (5, 3, 9, 1)]
    clean = clean_candidates(site, [Candidate(t, (), "stop") for t in texts])
    assert [c.continuation for c in clean] == texts
    ranked = rank_candidates(clean, [DoctestOutcome() for _ in clean])
    assert [r.continuation for r in ranked] == texts
