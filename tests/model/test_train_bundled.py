"""The committed checkpoint (trained on a GPU with transformers 5.17) loads and completes here."""

from __future__ import annotations

import json

import pytest

from model.paths import BUNDLED_MODEL_NAME, CHECKPOINTS_DIR

BUNDLED = CHECKPOINTS_DIR / BUNDLED_MODEL_NAME
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (BUNDLED / "config.json").exists(), reason="bundled model not built yet"
    ),
]
ADD_PROMPT = (
    'def add(a, b):\n    """Return the sum of a and b.\n    >>> add(2, 3)\n    5\n    """\n'
)


def test_bundled_checkpoint_files_and_size() -> None:
    weights = sorted(BUNDLED.glob("*.safetensors"))
    assert weights and sum(w.stat().st_size for w in weights) <= 50_000_000
    assert (BUNDLED / "MODEL_CARD.md").exists()
    config = json.loads((BUNDLED / "config.json").read_text())
    assert config["model_type"] == "llama" and config["vocab_size"] == 8192


def test_bundled_model_completes_a_simple_docstring() -> None:
    pytest.importorskip("torch")
    from model.engine import Engine
    from model.protocol import SamplingParams

    engine = Engine.load(BUNDLED, device="cpu")
    [candidates] = engine.generate(
        [ADD_PROMPT],
        SamplingParams(
            n=1, temperature=0.0, top_p=1.0, max_tokens=32, stop=["\ndef", "\nclass"], seed=0
        ),
    )
    assert candidates[0].text.strip() == "return a + b"


def test_bundled_tokenizer_loads_with_auto_tokenizer() -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(BUNDLED))
    assert tokenizer.decode(tokenizer(ADD_PROMPT)["input_ids"]) == ADD_PROMPT
    assert tokenizer.eos_token == "<|endoftext|>"
