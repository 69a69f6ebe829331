"""Fill-in-the-middle prompt templates keyed by a model family's FIM tokens (light tier).

A FIM-trained model completes the hole between a prefix and a suffix when it sees them wrapped
in its special tokens, prefix first ("PSM" order). ``find_fim_template`` picks the template
whose tokens a tokenizer's vocabulary holds; ``build_fim_prompt`` lays out the prompt. Pure
string code: the model server uses it for OpenAI's ``suffix`` field, and an editor-side client
can build the same prompts for servers that take no ``suffix`` (vLLM, llama.cpp).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass


@dataclass(frozen=True)
class FimTemplate:
    """The three marker tokens of one model family, in the order they appear in a prompt.

    The prompt is ``prefix_token + prefix + suffix_token + suffix + middle_token``; the model
    then generates the middle.
    """

    name: str
    prefix_token: str
    suffix_token: str
    middle_token: str
    families: str

    @property
    def tokens(self) -> tuple[str, str, str]:
        return (self.prefix_token, self.suffix_token, self.middle_token)


#: Known templates, tried in this order. Keep it to families with a distinct token set.
FIM_TEMPLATES: dict[str, FimTemplate] = {
    t.name: t
    for t in (
        FimTemplate(
            "starcoder", "<fim_prefix>", "<fim_suffix>", "<fim_middle>", "StarCoder, StarCoder2"
        ),
        FimTemplate(
            "qwen",
            "<|fim_prefix|>",
            "<|fim_suffix|>",
            "<|fim_middle|>",
            "Qwen2.5-Coder, CodeGemma",
        ),
        FimTemplate("santacoder", "<fim-prefix>", "<fim-suffix>", "<fim-middle>", "SantaCoder"),
        FimTemplate(
            "deepseek",
            "<｜fim▁begin｜>",
            "<｜fim▁hole｜>",
            "<｜fim▁end｜>",
            "DeepSeek-Coder",
        ),
    )
}


def find_fim_template(vocabulary: Container[str]) -> FimTemplate | None:
    """The first template whose three tokens all are in ``vocabulary``, or None."""
    for template in FIM_TEMPLATES.values():
        if all(token in vocabulary for token in template.tokens):
            return template
    return None


def build_fim_prompt(prefix: str, suffix: str, template: FimTemplate) -> str:
    """The prompt that asks a model of ``template``'s family for the text between the two."""
    return template.prefix_token + prefix + template.suffix_token + suffix + template.middle_token
