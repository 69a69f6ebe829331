"""Fill-in-the-middle templates: which family a vocabulary belongs to, and the prompt layout."""

from __future__ import annotations

import subprocess
import sys

import pytest

from model.fim import FIM_TEMPLATES, build_fim_prompt, find_fim_template


@pytest.mark.parametrize("name", sorted(FIM_TEMPLATES))
def test_a_vocabulary_with_a_familys_three_tokens_gets_its_template(name: str) -> None:
    template = FIM_TEMPLATES[name]
    vocabulary = {"def", "return", "<|endoftext|>", *template.tokens}
    assert find_fim_template(vocabulary) == template
    # Two of the three are not enough.
    assert find_fim_template(vocabulary - {template.middle_token}) is None


def test_a_vocabulary_without_fim_tokens_gets_none() -> None:
    assert find_fim_template({"def", "<|endoftext|>", "<|pad|>"}) is None


def test_the_prompt_is_prefix_then_suffix_then_the_middle_marker() -> None:
    prompt = build_fim_prompt("def f(x):\n    ", "\n    return y\n", FIM_TEMPLATES["starcoder"])
    assert prompt == "<fim_prefix>def f(x):\n    <fim_suffix>\n    return y\n<fim_middle>"
    qwen = build_fim_prompt("a{b}", "", FIM_TEMPLATES["qwen"])  # braces are plain text
    assert qwen == "<|fim_prefix|>a{b}<|fim_suffix|><|fim_middle|>"


def test_fim_module_is_light_tier() -> None:
    code = (
        "import sys, model.fim\n"
        "heavy = [m for m in ('torch', 'transformers', 'fastapi') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
