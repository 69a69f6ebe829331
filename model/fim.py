"""Fill-in-the-middle prompt templates of the model families people self-host (light tier).

A FIM-trained model completes the hole between a prefix and a suffix when it sees them wrapped
in its special tokens: prefix first ("PSM": StarCoder, Qwen-Coder, DeepSeek-Coder, CodeLlama,
CodeGemma) or suffix first (Codestral). Each template knows its marker tokens, its layout, the
tokens that end a middle (stop strings for servers that print special tokens) and model ids it
goes by. ``find_fim_template`` picks a template from a tokenizer's vocabulary,
``template_for_model_id`` from a served model's name, ``fim_template_from_setting`` from the
``fimTemplate`` setting; ``build_fim_prompt`` lays out the prompt; ``resolve_fim_template``
turns a setting plus a backend into a template (reading the tokenizer, or asking the server's
``GET /v1/models``). The model server uses it for OpenAI's ``suffix`` field; the LSP server and
evalkit's infilling benchmark build the same prompts for servers that take no ``suffix`` (vLLM,
llama.cpp).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_PLACEHOLDER_RE = re.compile(r"\{(pre|suf|mid|prefix|suffix)\}")


@dataclass(frozen=True)
class FimTemplate:
    """One model family's fill-in-the-middle format.

    ``layout`` places ``{prefix}`` and ``{suffix}`` between the markers (``{pre}``, ``{suf}``,
    ``{mid}``); the model then generates the middle. ``identifying`` tokens must also be in a
    vocabulary for it to count as this family's (two families share the same three markers).
    """

    name: str
    prefix_token: str
    suffix_token: str
    middle_token: str
    families: str
    layout: str = "{pre}{prefix}{suf}{suffix}{mid}"
    stop: tuple[str, ...] = ()
    identifying: tuple[str, ...] = ()
    model_ids: str = ""  # regular expression over a served model's id (case-insensitive)

    @property
    def markers(self) -> tuple[str, str, str]:
        return (self.prefix_token, self.suffix_token, self.middle_token)

    @property
    def tokens(self) -> tuple[str, ...]:
        """Every token a vocabulary must hold for this template: the markers, then the
        identifying tokens."""
        return tuple(token for token in (*self.markers, *self.identifying) if token)

    @property
    def stop_sequences(self) -> tuple[str, ...]:
        """What ends a middle: the family's end tokens and its own markers."""
        return tuple(dict.fromkeys([*self.stop, *(t for t in self.markers if t)]))


#: Known templates, most specific first (CodeGemma before Qwen: same markers).
FIM_TEMPLATES: dict[str, FimTemplate] = {
    t.name: t
    for t in (
        FimTemplate(
            "starcoder",
            "<fim_prefix>",
            "<fim_suffix>",
            "<fim_middle>",
            "StarCoder, StarCoder2",
            stop=("<|endoftext|>", "<file_sep>"),
            model_ids=r"starcoder",
        ),
        FimTemplate(
            "codegemma",
            "<|fim_prefix|>",
            "<|fim_suffix|>",
            "<|fim_middle|>",
            "CodeGemma",
            stop=("<|file_separator|>", "<eos>", "<end_of_turn>"),
            identifying=("<|file_separator|>",),
            model_ids=r"codegemma",
        ),
        FimTemplate(
            "qwen",
            "<|fim_prefix|>",
            "<|fim_suffix|>",
            "<|fim_middle|>",
            "Qwen2.5-Coder, Qwen3-Coder",
            stop=("<|endoftext|>", "<|fim_pad|>", "<|file_sep|>", "<|repo_name|>", "<|im_end|>"),
            model_ids=r"qwen.*coder",
        ),
        FimTemplate("santacoder", "<fim-prefix>", "<fim-suffix>", "<fim-middle>", "SantaCoder"),
        FimTemplate(
            "deepseek",
            "<｜fim▁begin｜>",
            "<｜fim▁hole｜>",
            "<｜fim▁end｜>",
            "DeepSeek-Coder",
            stop=("<｜end▁of▁sentence｜>", "<|EOT|>"),
            model_ids=r"deepseek.*coder",
        ),
        FimTemplate(
            "codellama",
            "<PRE>",
            "<SUF>",
            "<MID>",
            "CodeLlama",
            layout="{pre} {prefix} {suf}{suffix} {mid}",
            stop=("<EOT>",),
            model_ids=r"code[-_ ]?llama",
        ),
        FimTemplate(
            "codestral",
            "[PREFIX]",
            "[SUFFIX]",
            "[MIDDLE]",
            "Codestral (suffix first)",
            layout="{suf}{suffix}{pre}{prefix}",
            stop=("</s>",),
            model_ids=r"codestral",
        ),
    )
}

#: Other names the ``fimTemplate`` setting accepts for a template.
FIM_ALIASES = {
    "starcoder2": "starcoder",
    "qwen2.5-coder": "qwen",
    "qwen3-coder": "qwen",
    "deepseek-coder": "deepseek",
    "code-llama": "codellama",
    "mistral": "codestral",
}


def fim_setting_names() -> tuple[str, ...]:
    """Every word the ``fimTemplate`` setting accepts (besides a custom template string)."""
    return ("auto", "none", *FIM_TEMPLATES, *FIM_ALIASES)


def find_fim_template(vocabulary: Container[str]) -> FimTemplate | None:
    """The first template whose tokens all are in ``vocabulary``, or None."""
    for template in sorted(FIM_TEMPLATES.values(), key=lambda t: -len(t.tokens)):
        if all(token in vocabulary for token in template.tokens):
            return template
    return None


def template_for_model_id(model_id: str) -> FimTemplate | None:
    """The template a served model's id names (``Qwen/Qwen2.5-Coder-7B`` → qwen), or None."""
    for template in FIM_TEMPLATES.values():
        if template.model_ids and re.search(template.model_ids, model_id, re.IGNORECASE):
            return template
    return None


def custom_template(text: str) -> FimTemplate:
    """A template from a string holding ``{prefix}`` and ``{suffix}``."""
    if "{prefix}" not in text or "{suffix}" not in text:
        raise ValueError("a custom FIM template needs both {prefix} and {suffix}")
    return FimTemplate("custom", "", "", "", "custom", layout=text)


def fim_template_from_setting(setting: str) -> FimTemplate | str | None:
    """What ``fimTemplate`` asks for: a template, None (``none``), or ``"auto"``."""
    word = setting.strip().lower()
    if word == "auto":
        return "auto"
    if word == "none":
        return None
    if "{prefix}" in setting or "{suffix}" in setting:
        return custom_template(setting)
    name = FIM_ALIASES.get(word, word)
    if name not in FIM_TEMPLATES:
        raise ValueError(
            f"unknown FIM template {setting!r}: one of {', '.join(fim_setting_names())}"
        )
    return FIM_TEMPLATES[name]


def build_fim_prompt(prefix: str, suffix: str, template: FimTemplate) -> str:
    """The prompt that asks a model of ``template``'s family for the text between the two."""
    values = {
        "pre": template.prefix_token,
        "suf": template.suffix_token,
        "mid": template.middle_token,
        "prefix": prefix,
        "suffix": suffix,
    }
    # One pass over the layout: braces inside the prefix or suffix stay plain text.
    return _PLACEHOLDER_RE.sub(lambda match: values[match.group(1)], template.layout)


def tokenizer_vocabulary(model_dir: str | Path) -> set[str]:
    """The special and added tokens of the tokenizer saved in ``model_dir`` (read from its
    JSON files, no tokenizer library needed); empty when there is none."""
    found: set[str] = set()
    directory = Path(model_dir)
    try:
        data = json.loads((directory / "tokenizer.json").read_text(encoding="utf-8"))
        found.update(str(item.get("content", "")) for item in data.get("added_tokens") or [])
        vocab = (data.get("model") or {}).get("vocab")
        if isinstance(vocab, dict):
            found.update(token for token in vocab if token.startswith(("<", "[")))
    except (OSError, ValueError, AttributeError):
        pass
    try:
        config = json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
        decoder = config.get("added_tokens_decoder") or {}
        found.update(str(item.get("content", "")) for item in decoder.values())
        found.update(_strings(config.get("additional_special_tokens") or []))
    except (OSError, ValueError, AttributeError):
        pass
    found.discard("")
    return found


def _strings(items: Iterable[object]) -> list[str]:
    return [
        item if isinstance(item, str) else str(getattr(item, "get", lambda _k: "")("content"))
        for item in items
    ]


# ----------------------------------------------------------------------------------------------
# Which template a backend's model takes

MODELS_TIMEOUT_S = 3.0


def fim_auto_declined(model_dir: str | Path) -> str | None:
    """The reason a model directory's ``docomplete.json`` gives for not being prompted with
    FIM under ``fimTemplate: auto`` (``"fim_auto": false``, ``"fim_auto_reason"``), or None:
    its FIM markers exist, but it fills in worse than it completes left to right."""
    try:
        meta = json.loads((Path(model_dir) / "docomplete.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("fim_auto") is not False:
        return None
    return str(meta.get("fim_auto_reason") or "its docomplete.json sets fim_auto to false")


class FimLookupError(RuntimeError):
    """The model server could not be asked which model it serves (try again later)."""


def _models_url(url: str) -> str:
    base = url.rstrip("/")
    return f"{base}/models" if base.endswith("/v1") else f"{base}/v1/models"


def template_from_server(url: str, timeout_s: float = MODELS_TIMEOUT_S) -> FimTemplate | None:
    """The template ``GET /v1/models`` points at: a ``fim_template`` field (docomplete's own
    server names it), else the model id (``Qwen/Qwen2.5-Coder-7B`` → qwen), else None. None
    too when docomplete's server says its model declines FIM for ``auto`` (``"fim_auto":
    false``, from the model directory's ``docomplete.json``)."""
    import httpx

    try:
        body = httpx.get(_models_url(url), timeout=timeout_s).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise FimLookupError(f"{url} did not list its models ({exc})") from exc
    entries = body.get("data") if isinstance(body, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        if entry.get("fim_auto") is False:
            log.info("%s: %s", url, entry.get("fim_auto_reason") or "the model declines FIM")
            return None
        named = entry.get("fim_template")
        if isinstance(named, str):
            try:
                choice = fim_template_from_setting(named)
            except ValueError:
                choice = None
            if isinstance(choice, FimTemplate):
                return choice
        if isinstance(entry.get("id"), str) and (found := template_for_model_id(entry["id"])):
            return found
    return None


def resolve_fim_template(
    setting: str, backend: Sequence[str], model_path: str | Path | None
) -> FimTemplate | None:
    """The template ``setting`` (``auto``, ``none``, a name or a custom string) means for this
    backend (``("embedded",)`` or server URLs); blocking: reads files, may ask the server.

    ``auto`` reads the special tokens of the tokenizer at ``model_path`` (for the embedded
    backend, default: the bundled checkpoint), then asks a server's ``GET /v1/models``.
    Raises ``ValueError`` for an unknown setting and :class:`FimLookupError` when ``auto``
    needs a server that does not answer.
    """
    choice = fim_template_from_setting(setting)
    if choice != "auto":
        return choice if isinstance(choice, FimTemplate) else None
    embedded = tuple(backend) == ("embedded",)
    if model_path or embedded:
        from model.paths import default_model_path

        directory = model_path or default_model_path()
        if (found := find_fim_template(tokenizer_vocabulary(directory))) is not None:
            return found
    if not embedded and backend:
        return template_from_server(backend[0])
    return None
