"""Ending samples early in the engine (scope stop, decode budget, truncate) and streaming them.

The engine runs a tiny random Llama, whose text is gibberish but full of line breaks and
indentation: each test first decodes without the feature, finds where it must act in that text,
then checks the engine acts exactly there (sampling is counter-based, so a seed gives the same
tokens up to the point where the feature ends the sample).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from model.engine import Engine, GenerationRequest
from model.engine.sampling import scope_exit
from model.protocol import DecodeBudget, SamplingParams

PROMPT = 'def add(a: int, b: int) -> int:\n    """Return the sum of a and b."""\n'


def test_scope_exit_finds_the_first_line_left_of_the_function() -> None:
    body = "    x = 1\n\n    return x\nprint(x)\n"
    assert scope_exit(body, 0, at_line_start=True) == body.index("\nprint")
    # Blank lines and a line still being written at column 0 are not decisions yet.
    assert scope_exit("    x = 1\n\n", 0, at_line_start=True) == -1
    assert scope_exit("    x = 1\n  ", 0, at_line_start=True) == -1
    # A method body (def at column 4): a line at column 4 leaves it, column 8 does not.
    method = "        return self.x\n        \n    def other(self):\n"
    assert scope_exit(method, 4, at_line_start=True) == method.index("\n    def")
    # The prompt ended mid-line: the first piece continues it and never counts.
    assert scope_exit("x + 1\nreturn", 0, at_line_start=False) == -1
    assert scope_exit("x + 1\n    y = 2\nz = 3", 0, at_line_start=False) == len("x + 1\n    y = 2")
    # Nothing left of the body's first line is cut when that line itself sits at column 0
    # (post-processing re-indents such a body rather than dropping it).
    assert scope_exit("return 1\nx = 2\n", 0, at_line_start=True) == -1


def _first_line_out_of_scope(text: str) -> int:
    return scope_exit(text, 10**6, at_line_start=True)


def test_a_sample_that_leaves_the_function_stops_in_the_engine(engine: Engine) -> None:
    max_tokens, n = 80, 16
    free = SamplingParams(n=n, temperature=1.0, max_tokens=max_tokens, seed=11)
    [samples] = engine.generate([PROMPT], free)
    leaving = [
        (index, cut)
        for index, sample in enumerate(samples)
        if (cut := _first_line_out_of_scope(sample.text)) >= 0
        and sample.generated_tokens == max_tokens
    ]
    assert leaving, "no sample dedents out of its first line: pick another seed"
    index, cut = leaving[0]
    full = samples[index].text
    scoped = SamplingParams(**{**free.__dict__, "scope_indent": 10**6})
    stopped = engine.generate([PROMPT], scoped)[0][index]
    assert stopped.finish_reason == "stop"
    assert stopped.text == full[:cut]
    assert stopped.generated_tokens < max_tokens  # decoding stopped, not just the text cut
    assert full[:cut].startswith(engine.decode(stopped.token_ids))
    assert len(stopped.token_logprobs) == len(stopped.token_ids) == len(stopped.tokens)


def test_decode_budget_cuts_samples_far_longer_than_their_finished_siblings(
    engine: Engine,
) -> None:
    params = SamplingParams(n=4, temperature=1.0, max_tokens=150, stop=("\n",), seed=0)
    [free] = engine.generate([PROMPT], params)
    lengths = sorted(c.generated_tokens for c in free)
    assert lengths[-1] > lengths[0] + 10, "samples of similar lengths: pick another seed"
    request = GenerationRequest(PROMPT, params, budget=DecodeBudget(quorum=0.25, factor=1, slack=2))
    engine.run([request])
    limit = lengths[0] + 2
    assert max(c.generated_tokens for c in request.results) <= limit
    cut = [c for c in request.results if c.generated_tokens == limit and "\n" not in c.text]
    assert cut and all(c.finish_reason == "length" for c in cut)


def test_finished_samples_are_handed_over_at_once_and_truncate_ends_the_rest(
    engine: Engine,
) -> None:
    truncate = threading.Event()
    handed: list[tuple[int, int]] = []  # (sample index, decode steps so far)

    def on_finish(index: int, candidate) -> None:
        handed.append((index, engine.stats.decode_steps))
        truncate.set()  # the first finished sample ends the other ones

    params = SamplingParams(n=4, temperature=1.0, max_tokens=300, stop=("\n",), seed=5)
    steps_before = engine.stats.decode_steps
    request = GenerationRequest(PROMPT, params, on_finish=on_finish, truncate=truncate)
    engine.run([request])
    assert sorted(index for index, _ in handed) == [0, 1, 2, 3]
    assert len(request.results) == 4
    first_len = min(c.generated_tokens for c in request.results)
    # Everything ended one step after the first sample did, well before max_tokens.
    assert engine.stats.decode_steps - steps_before <= first_len + 1
    assert [c.finish_reason for c in request.results].count("length") >= 1


async def test_in_process_stream_yields_candidates_as_they_finish(tiny_model_path: Path) -> None:
    from model.client import InProcessBackend

    backend = InProcessBackend(tiny_model_path)
    try:
        params = SamplingParams(n=3, temperature=1.0, max_tokens=40, stop=("\n",), seed=1)
        batch = (await backend.complete([PROMPT], params))[0]
        stream = backend.stream(PROMPT, params)
        seen = {index: candidate async for index, candidate in stream}
        assert stream.done and stream.finished == 3
        assert [seen[i] for i in range(3)] == batch  # the same samples as the batch call
        # Truncating right away: every sample ends at once, still delivered.
        long = SamplingParams(n=2, temperature=1.0, max_tokens=2000, seed=2)
        stream = backend.stream(PROMPT, long)
        stream.truncate()
        got = await asyncio.wait_for(_collect(stream), 30)
        assert len(got) == 2 and all(c.finish_reason == "length" for c in got)
        assert all(len(c.token_logprobs) < 100 for c in got)
    finally:
        await backend.aclose()


async def _collect(stream) -> list:
    return [candidate async for _, candidate in stream]


def test_decode_budget_limits_follow_the_finished_siblings() -> None:
    budget = DecodeBudget()  # quorum 1 of 4, factor 1.5, slack 16, grace 4, floor 32
    assert budget.limit(4, []) is None
    assert budget.limit(4, [10]) == 31  # short siblings: up to 1.5x + 16
    assert budget.limit(4, [40]) == 44  # past the floor: only a little longer than them
    assert budget.limit(4, [10, 40]) == 44
    assert DecodeBudget(quorum=0.5).limit(4, [10]) is None  # waits for 2 of 4
