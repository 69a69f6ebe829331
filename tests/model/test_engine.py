"""The in-process engine on a tiny random Llama: caching, batching, stopping, seeds, cancel."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch

from model.engine import Engine, EngineLoadError, GenerationCancelled, GenerationRequest
from model.protocol import SamplingParams

PROMPTS = [
    'def add(a: int, b: int) -> int:\n    """Return the sum of a and b."""\n',
    "class Stack:\n    def push(self, item):\n",
    "import os\n",
]


def _embedded_tokens(engine: Engine) -> tuple[list[int], torch.utils.hooks.RemovableHandle]:
    """Count every token position that goes through the embedding layer (padding included)."""
    seen = [0]

    def hook(_module, inputs, _output) -> None:
        seen[0] += inputs[0].numel()

    handle = engine.model.get_input_embeddings().register_forward_hook(hook)
    return seen, handle


def test_prompt_is_encoded_once_and_shared_by_its_samples(engine: Engine) -> None:
    prompt = PROMPTS[0]
    prompt_len = engine.count_tokens(prompt)
    seen, handle = _embedded_tokens(engine)
    try:
        [candidates] = engine.generate([prompt], SamplingParams(n=6, temperature=1.0, max_tokens=8))
    finally:
        handle.remove()
    assert len(candidates) == 6
    # One pass over the prompt, then exactly one token per row per decode step; a row's last
    # sampled token is never fed back. HF num_return_sequences would embed the prompt 6 times.
    fed_back = sum(c.generated_tokens - 1 for c in candidates)
    assert seen[0] == prompt_len + fed_back
    assert seen[0] < 2 * prompt_len + fed_back


def test_batched_prompts_equal_one_by_one_under_greedy(engine: Engine) -> None:
    params = SamplingParams(n=2, temperature=0.0, max_tokens=24)
    batched = engine.generate(PROMPTS, params)
    single = [engine.generate([p], params)[0] for p in PROMPTS]
    assert [[c.text for c in cs] for cs in batched] == [[c.text for c in cs] for cs in single]
    for got, want in zip(batched, single, strict=True):
        assert got[0].token_ids == want[0].token_ids
        assert got[0].token_logprobs == pytest.approx(want[0].token_logprobs, abs=1e-4)


def test_greedy_is_deterministic_and_picks_the_argmax(engine: Engine) -> None:
    params = SamplingParams(n=3, temperature=0.0, max_tokens=10)
    first = engine.generate([PROMPTS[1]], params)[0]
    again = engine.generate([PROMPTS[1]], params)[0]
    assert len({c.text for c in first}) == 1
    assert first == again
    ids = torch.tensor([engine.encode(PROMPTS[1])])
    with torch.inference_mode():
        logits = engine.model(input_ids=ids).logits[0, -1].float()
    if first[0].token_ids:
        assert first[0].token_ids[0] == int(logits.argmax())
        raw = torch.log_softmax(logits, dim=-1)[first[0].token_ids[0]]
        assert first[0].token_logprobs[0] == pytest.approx(float(raw), abs=1e-4)


def test_logprobs_are_raw_model_logprobs_not_tempered(engine: Engine) -> None:
    params = SamplingParams(n=4, temperature=2.0, top_p=0.9, max_tokens=3, seed=7)
    [candidates] = engine.generate([PROMPTS[0]], params)
    ids = torch.tensor([engine.encode(PROMPTS[0])])
    with torch.inference_mode():
        raw = torch.log_softmax(engine.model(input_ids=ids).logits[0, -1].float(), dim=-1)
    for c in candidates:
        if c.token_ids:
            assert c.token_logprobs[0] == pytest.approx(float(raw[c.token_ids[0]]), abs=1e-4)
        assert len(c.token_logprobs) == len(c.token_ids) == len(c.tokens)


def test_seed_reproduces_samples_regardless_of_batch_companions(engine: Engine) -> None:
    params = SamplingParams(n=4, temperature=1.0, top_p=0.95, max_tokens=16, seed=1234)
    alone = engine.generate([PROMPTS[2]], params)[0]
    again = engine.generate([PROMPTS[2]], params)[0]
    with_others = engine.generate([PROMPTS[0], PROMPTS[2]], params)[1]
    other_seed = engine.generate([PROMPTS[2]], SamplingParams(**{**params.__dict__, "seed": 99}))[0]
    assert alone == again
    # Other prompts in the batch change float rounding a little, never the sampled tokens.
    assert [c.token_ids for c in with_others] == [c.token_ids for c in alone]
    assert len({c.text for c in alone}) > 1  # the n samples differ from each other
    assert [c.text for c in other_seed] != [c.text for c in alone]


def test_stop_string_is_trimmed_and_its_tokens_dropped(engine: Engine) -> None:
    greedy = SamplingParams(n=1, temperature=0.0, max_tokens=40)
    full = engine.generate([PROMPTS[0]], greedy)[0][0].text
    assert len(full) > 8
    stop = full[6:8]
    cut = full.find(stop)
    [[stopped]] = engine.generate(
        [PROMPTS[0]], SamplingParams(**{**greedy.__dict__, "stop": (stop,)})
    )
    assert stopped.finish_reason == "stop"
    assert stopped.text == full[:cut]
    assert stop not in stopped.text
    assert full[:cut].startswith(engine.decode(stopped.token_ids))
    assert len(stopped.token_logprobs) == len(stopped.token_ids)
    assert stopped.generated_tokens > len(stopped.token_ids)


def test_finished_sequences_leave_the_batch(engine: Engine) -> None:
    short = GenerationRequest(PROMPTS[0], SamplingParams(n=4, temperature=0.0, max_tokens=2))
    long = GenerationRequest(PROMPTS[1], SamplingParams(n=4, temperature=0.0, max_tokens=20))
    before = engine.stats.decoded_rows
    engine.run([short, long])
    decoded_rows = engine.stats.decoded_rows - before
    candidates = short.results + long.results
    assert [len(r.results) for r in (short, long)] == [4, 4]
    assert all(c.finish_reason == "length" for c in candidates)
    assert all(len(c.token_ids) == 2 for c in short.results)
    # Each row is decoded once per token it fed back: the short rows stop costing compute.
    assert decoded_rows == sum(c.generated_tokens - 1 for c in candidates)
    assert decoded_rows < 8 * 19


def test_cancel_event_stops_decoding(engine: Engine) -> None:
    cancel = threading.Event()
    seen: list[int] = []

    def on_token(_sample: int, token_id: int, _logprob: float, _top: object = ()) -> None:
        seen.append(token_id)
        if len(seen) >= 3:
            cancel.set()

    request = GenerationRequest(
        PROMPTS[0], SamplingParams(n=1, temperature=0.0, max_tokens=200), cancel, on_token
    )
    steps_before = engine.stats.decode_steps
    engine.run([request])
    assert request.cancelled and request.results == []
    assert engine.stats.decode_steps - steps_before <= 3
    with pytest.raises(GenerationCancelled):
        engine.generate([PROMPTS[0]], SamplingParams(max_tokens=50), cancel=cancel)


def test_long_prompt_is_cut_from_the_left_to_fit_the_context(engine: Engine) -> None:
    long_prompt = "x = 1\n" * 2000
    request = GenerationRequest(long_prompt, SamplingParams(n=2, temperature=0.0, max_tokens=16))
    engine.run([request])
    assert request.prompt_tokens == engine.max_context - 16
    assert all(len(c.token_ids) <= 16 for c in request.results)


def test_unloadable_paths_give_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(EngineLoadError) as missing:
        Engine.load(tmp_path / "nowhere")
    assert "\n" not in str(missing.value) and "--model" in str(missing.value)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(EngineLoadError) as broken:
        Engine.load(tmp_path)
    assert "\n" not in str(broken.value) and str(tmp_path) in str(broken.value)


def test_shared_prompt_attention_matches_the_copied_cache_path(
    engine: Engine, tiny_model_path: Path
) -> None:
    copying = Engine.load(tiny_model_path, shared_prefix=False)
    assert engine.shared_prefix and not copying.shared_prefix
    short = GenerationRequest(PROMPTS[2], SamplingParams(n=3, temperature=0.0, max_tokens=5))
    params = SamplingParams(n=3, temperature=0.9, max_tokens=20, seed=3, stop=("\n\n",))
    # Mixed prompt lengths + a request that finishes early exercise padding and row removal.
    runs = []
    for eng in (engine, copying):
        requests = [GenerationRequest(p, params) for p in PROMPTS[:2]]
        requests.append(GenerationRequest(short.prompt, short.params))
        eng.run(requests)
        runs.append(requests)
    for shared, copied in zip(*runs, strict=True):
        assert [c.token_ids for c in shared.results] == [c.token_ids for c in copied.results]
        for a, b in zip(shared.results, copied.results, strict=True):
            assert a.token_logprobs == pytest.approx(b.token_logprobs, abs=1e-4)


def test_one_prompt_s_samples_match_the_copied_cache_path(
    engine: Engine, tiny_model_path: Path
) -> None:
    """An editor's request (one prompt, n samples: the shared-prefix attention's one-block
    path) samples the same tokens as copying the prompt's cache to every row."""
    copying = Engine.load(tiny_model_path, shared_prefix=False)
    params = SamplingParams(n=4, temperature=0.9, max_tokens=24, seed=11, stop=("\n\n",))
    [shared] = engine.generate([PROMPTS[0]], params)
    [copied] = copying.generate([PROMPTS[0]], params)
    assert [c.token_ids for c in shared] == [c.token_ids for c in copied]
    assert len({c.generated_tokens for c in shared}) > 1  # rows left the batch one by one
    for a, b in zip(shared, copied, strict=True):
        assert a.token_logprobs == pytest.approx(b.token_logprobs, abs=1e-4)


@pytest.mark.slow
def test_bundled_model_completes_a_docstring() -> None:
    from model.paths import default_model_path

    path = default_model_path()
    if not (path / "config.json").is_file():
        pytest.skip(f"bundled model not built yet ({path}); run `docomplete train`")
    bundled = Engine.load(path)
    prompt = 'def add(a: int, b: int) -> int:\n    """Return the sum of a and b."""\n'
    params = SamplingParams(n=4, temperature=0.2, max_tokens=48, stop=("\ndef ", "\nclass "))
    [candidates] = bundled.generate([prompt], params)
    assert len(candidates) == 4
    assert any("return" in c.text for c in candidates)


@pytest.mark.parametrize("spread", [4.0, 2.0, 0.5])
def test_top_p_sampling_keeps_exactly_the_nucleus(engine: Engine, spread: float) -> None:
    """The top-k shortcuts must pick the same tokens as a full sort of the vocabulary, whether
    the nucleus lies in the top 64 (peaked logits), the top 256 or neither (flat)."""
    generator = torch.Generator().manual_seed(0)
    rows, vocab = 64, 1000
    logits = torch.randn(rows, vocab, generator=generator) * spread
    temperatures = torch.full((rows,), 0.8)
    top_ps = torch.full((rows,), 0.9)
    uniforms = torch.rand(rows, generator=generator, dtype=torch.float64)
    picked, logprobs = engine._sample(logits, temperatures, top_ps, uniforms)

    probs = torch.softmax(logits / 0.8, dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    nucleus = (sorted_probs.cumsum(-1) - sorted_probs) < 0.9
    for row in range(rows):
        kept = sorted_probs[row][nucleus[row]].double()
        target = uniforms[row] * kept.sum()
        index = int(torch.searchsorted(kept.cumsum(0), target.unsqueeze(0), right=True))
        assert int(picked[row]) == int(order[row, min(index, kept.numel() - 1)])
    assert torch.allclose(logprobs, torch.log_softmax(logits, -1).gather(1, picked[:, None])[:, 0])
