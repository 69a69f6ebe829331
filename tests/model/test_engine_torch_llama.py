"""The engine's torch-only Llama (``model.engine.llama``) against the transformers path: same
greedy tokens, log-probs within 1e-5, and a first embedded completion without transformers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from model.engine import Engine, EngineLoadError, GenerationRequest
from model.engine.tokenizer import load_tokenizer_files
from model.paths import BUNDLED_MODEL_NAME, CHECKPOINTS_DIR
from model.protocol import SamplingParams
from tests.fixtures.tiny_model import build_tiny_model, build_tiny_tokenizer

BUNDLED = CHECKPOINTS_DIR / BUNDLED_MODEL_NAME
REPO = Path(__file__).resolve().parents[2]
PROMPTS = [
    'def add(a: int, b: int) -> int:\n    """Return the sum of a and b.\n\n'
    '    >>> add(2, 3)\n    5\n    """\n',
    "class Stack:\n    def push(self, item):\n",
    "import os\n",
    "x",
]
TOLERANCE = 1e-5


def _assert_same_generations(ours: Engine, reference: Engine, *, max_tokens: int) -> None:
    """Greedy samples (n = 2, mixed prompt lengths in one batch, so padding and row removal
    happen) give identical tokens and log-probs within ``TOLERANCE``."""
    assert ours.implementation == "torch" and reference.implementation == "transformers"
    params = SamplingParams(n=2, temperature=0.0, max_tokens=max_tokens)
    runs = []
    for engine in (ours, reference):
        requests = [GenerationRequest(p, params) for p in PROMPTS]
        engine.run(requests)
        runs.append(requests)
    for mine, theirs in zip(*runs, strict=True):
        for a, b in zip(mine.results, theirs.results, strict=True):
            assert a.token_ids == b.token_ids
            assert a.text == b.text
            assert a.token_logprobs == pytest.approx(b.token_logprobs, abs=TOLERANCE)
            assert a.generated_tokens == b.generated_tokens
    # The plain forward pass over a whole prompt (no cache) agrees at every position.
    ids = torch.tensor([ours.encode(PROMPTS[0])])
    with torch.inference_mode():
        mine_logits = torch.log_softmax(ours.model(input_ids=ids).logits.float(), dim=-1)
        their_logits = torch.log_softmax(reference.model(input_ids=ids).logits.float(), dim=-1)
    assert torch.allclose(mine_logits, their_logits, atol=TOLERANCE, rtol=0)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("torch-llama")
    return {
        # grouped-query attention (4 query heads share 2 key/value heads), separate output head
        "gqa": build_tiny_model(root / "gqa", num_heads=4, num_kv_heads=2),
        # one key/value head for all, tied embeddings, weights over several files
        "mqa-tied-sharded": build_tiny_model(
            root / "mqa",
            num_heads=4,
            num_kv_heads=1,
            tie_word_embeddings=True,
            max_shard_size="40KB",
            seed=1,
        ),
    }


@pytest.mark.parametrize("name", ["gqa", "mqa-tied-sharded"])
@pytest.mark.parametrize("shared_prefix", [True, False])
def test_tiny_llama_torch_path_equals_transformers(
    tiny_models: dict[str, Path], name: str, shared_prefix: bool
) -> None:
    path = tiny_models[name]
    if name.endswith("sharded"):
        assert (path / "model.safetensors.index.json").is_file()
    # fp32 projections: the torch path is exact only at the checkpoint's own arithmetic.
    ours = Engine.load(path, shared_prefix=shared_prefix, matmul_dtype="float32")
    reference = Engine.load(path, shared_prefix=shared_prefix, implementation="transformers")
    _assert_same_generations(ours, reference, max_tokens=16)


@pytest.mark.slow
@pytest.mark.skipif(not (BUNDLED / "config.json").is_file(), reason="bundled model not built")
def test_bundled_model_torch_path_equals_transformers() -> None:
    ours = Engine.load(BUNDLED, device="cpu", matmul_dtype="float32")
    reference = Engine.load(BUNDLED, device="cpu", implementation="transformers")
    _assert_same_generations(ours, reference, max_tokens=32)


def test_a_llama_it_does_not_implement_still_loads_through_transformers(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    path = tmp_path / "scaled"
    shutil.copytree(tiny_models["gqa"], path)
    config = json.loads((path / "config.json").read_text())
    config["rope_parameters"] = {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}
    (path / "config.json").write_text(json.dumps(config))
    engine = Engine.load(path)
    assert engine.implementation == "transformers"
    [candidates] = engine.generate([PROMPTS[0]], SamplingParams(n=2, max_tokens=4))
    assert len(candidates) == 2
    with pytest.raises(EngineLoadError) as forced:
        Engine.load(path, implementation="torch")
    message = str(forced.value)
    assert "\n" not in message and "rope_parameters" in message
    assert "DOCOMPLETE_MODEL_IMPL" in message


def test_environment_variable_forces_the_transformers_path(
    tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCOMPLETE_MODEL_IMPL", "transformers")
    assert Engine.load(tiny_models["gqa"]).implementation == "transformers"
    monkeypatch.setenv("DOCOMPLETE_MODEL_IMPL", "tensorflow")
    with pytest.raises(EngineLoadError, match="use auto, torch or transformers"):
        Engine.load(tiny_models["gqa"])


def test_bf16_projections_keep_the_fp32_model_s_log_probs_close(
    tiny_models: dict[str, Path],
) -> None:
    """``matmul_dtype="bfloat16"`` stores and multiplies only the layers' projections in bf16:
    the embedding/output head, norms and cache stay fp32, and log-probs move by bf16 rounding."""
    path = tiny_models["mqa-tied-sharded"]
    exact = Engine.load(path, matmul_dtype="float32")
    fast = Engine.load(path, matmul_dtype="bfloat16")
    dtypes = {n: p.dtype for n, p in fast.model.named_parameters(remove_duplicate=False)}
    assert dtypes["layers.0.attention.qkv"] == torch.bfloat16
    assert dtypes["layers.0.mlp.down"] == torch.bfloat16
    assert dtypes["embed.weight"] == torch.float32  # tied to the output head: logits in fp32
    assert dtypes["layers.0.attention_norm.weight"] == torch.float32
    assert {p.dtype for p in exact.model.parameters()} == {torch.float32}
    ids = torch.tensor([exact.encode(PROMPTS[0])])
    with torch.inference_mode():
        want = torch.log_softmax(exact.model(input_ids=ids).logits, dim=-1)
        got = torch.log_softmax(fast.model(input_ids=ids).logits, dim=-1)
    assert got.dtype == torch.float32
    assert torch.allclose(got, want, atol=0.05, rtol=0)
    assert not torch.equal(got, want)  # the projections really ran in bf16
    # Sampling through the cache (prefill + decode steps) works as with fp32 weights.
    params = SamplingParams(n=3, temperature=0.8, max_tokens=8, seed=5)
    [candidates] = fast.generate([PROMPTS[1]], params)
    assert len(candidates) == 3 and all(c.generated_tokens > 0 for c in candidates)


def test_matmul_dtype_comes_from_the_environment(
    tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCOMPLETE_MATMUL_DTYPE", "bfloat16")
    params = dict(Engine.load(tiny_models["gqa"]).model.named_parameters())
    assert params["layers.0.mlp.gate_up"].dtype == torch.bfloat16
    monkeypatch.setenv("DOCOMPLETE_MATMUL_DTYPE", "int4")
    with pytest.raises(EngineLoadError, match="use float32, bfloat16 or auto") as bad:
        Engine.load(tiny_models["gqa"])
    assert "\n" not in str(bad.value)


def test_tokenizer_files_encode_and_decode_like_auto_tokenizer(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    fim = ("<fim_prefix>", "<fim_middle>", "<fim_suffix>")
    build_tiny_tokenizer(tmp_path / "fim", extra_special_tokens=fim)
    directories = [tmp_path / "fim"]
    if (BUNDLED / "tokenizer.json").is_file():
        directories.append(BUNDLED)
    texts = [
        'def f(x):\n    """Café ☕ 😀."""\n    return x<|endoftext|>',
        "",
        "  <fim_prefix>a = <fim_suffix>\n<fim_middle>",
        "x\r\n\ty  ",
    ]
    for directory in directories:
        reference = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        ours = load_tokenizer_files(directory)
        assert not isinstance(ours, str), ours
        for text in texts:
            for special in (True, False):
                want = reference(text, add_special_tokens=special)["input_ids"]
                assert ours(text, add_special_tokens=special)["input_ids"] == want
            ids = reference(text)["input_ids"]
            for skip in (True, False):
                assert ours.decode(ids, skip_special_tokens=skip) == reference.decode(
                    ids, skip_special_tokens=skip
                )
        for attribute in (
            "bos_token_id",
            "eos_token_id",
            "pad_token_id",
            "eos_token",
            "model_max_length",
            "all_special_tokens",
            "all_special_ids",
        ):
            assert getattr(ours, attribute) == getattr(reference, attribute), attribute
        assert ours.get_vocab() == reference.get_vocab() and len(ours) == len(reference)


def test_a_model_specific_tokenizer_class_is_left_to_transformers(tmp_path: Path) -> None:
    build_tiny_tokenizer(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    config["tokenizer_class"] = "LlamaTokenizer"  # adds BOS by its own rules
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    assert "LlamaTokenizer" in str(load_tokenizer_files(tmp_path))


def test_first_embedded_completion_does_not_import_transformers(
    tiny_models: dict[str, Path],
) -> None:
    """What the editor's server does at start: the embedded backend, then a completion."""
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from model.client import make_backend
        from model.protocol import SamplingParams

        backend = make_backend("embedded", model_path={str(tiny_models["gqa"])!r}, threads="auto")
        [candidates] = asyncio.run(
            backend.complete(["def add(a, b):\\n"], SamplingParams(n=4, max_tokens=8))
        )
        assert len(candidates) == 4
        print(backend._engine.implementation)
        print(sorted(m for m in sys.modules if m.split(".")[0] == "transformers"))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**_clean_env(), "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[:2] == ["torch", "[]"]


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "DOCOMPLETE_MODEL_IMPL"}
