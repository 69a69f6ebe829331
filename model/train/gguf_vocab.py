"""Map a Hugging Face ``tokenizer.json`` onto GGUF tokenizer metadata, or refuse with the fix.

llama.cpp does not run a tokenizer's own pre-tokenizer: it picks one of its built-in presets by
the name in ``tokenizer.ggml.pre`` and tokenises with that preset's regex. A GGUF therefore only
tokenises like transformers when the tokenizer's pre-tokenizer *is* one of those presets. This
module recognises the ones it can map exactly and says why it refuses any other.
Pure JSON code (no transformers): the export command and the tests both use it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.cli_support import CommandError

#: The split regex of Llama 3's tokenizer.json, which llama.cpp's ``llama-bpe`` preset implements
#: (with ``ignore_merges``: a pre-token that is itself in the vocabulary is never split).
LLAMA3_SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

#: GGUF token types (``gguf.TokenType``), repeated here so this module needs no ``gguf``.
TOKEN_NORMAL = 1
TOKEN_CONTROL = 3
TOKEN_USER_DEFINED = 4
TOKEN_UNUSED = 5

#: Fill-in-the-middle markers by GGUF key suffix (``tokenizer.ggml.<key>_token_id``).
FIM_MARKERS = {
    "fim_pre": ("<|fim_prefix|>", "<fim_prefix>", "<|fim▁begin|>"),
    "fim_mid": ("<|fim_middle|>", "<fim_middle>", "<|fim▁end|>"),
    "fim_suf": ("<|fim_suffix|>", "<fim_suffix>", "<|fim▁hole|>"),
}


@dataclass
class GgufVocab:
    """Everything the ``tokenizer.ggml.*`` keys hold, in llama.cpp's terms."""

    model: str  # tokenizer.ggml.model
    pre: str  # tokenizer.ggml.pre
    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    add_bos: bool
    special_ids: dict[str, int] = field(default_factory=dict)  # "bos" -> id, "fim_pre" -> id


def _refuse(path: Path, what: str) -> CommandError:
    return CommandError(
        f"{path}: {what}; llama.cpp could not tokenise like transformers. Export a model whose "
        "tokenizer.json uses Llama 3's split regex + ByteLevel(use_regex=False) with "
        "ignore_merges (llama.cpp's 'llama-bpe' preset)"
    )


def _pre_tokenizer_preset(spec: Any, path: Path) -> str:
    """The llama.cpp preset whose regex is exactly this pre-tokenizer, or a CommandError."""
    if not isinstance(spec, dict) or spec.get("type") != "Sequence":
        raise _refuse(path, f"pre-tokenizer {_describe(spec)} matches no llama.cpp preset")
    steps = spec.get("pretokenizers") or []
    if len(steps) != 2:
        raise _refuse(path, f"pre-tokenizer {_describe(spec)} matches no llama.cpp preset")
    split, byte_level = steps
    regex = (split.get("pattern") or {}).get("Regex") if split.get("type") == "Split" else None
    if (
        regex != LLAMA3_SPLIT_REGEX
        or split.get("behavior") != "Isolated"
        or split.get("invert", False)
    ):
        raise _refuse(
            path,
            f"pre-tokenizer split {regex!r} is not Llama 3's regex (isolated), the only one "
            "this exporter maps to a llama.cpp preset",
        )
    if (
        byte_level.get("type") != "ByteLevel"
        or byte_level.get("use_regex", True)
        or byte_level.get("add_prefix_space", False)
    ):
        raise _refuse(
            path,
            "the step after the split must be ByteLevel(add_prefix_space=False, "
            f"use_regex=False), got {_describe(byte_level)}",
        )
    return "llama-bpe"


def _describe(spec: Any) -> str:
    if not isinstance(spec, dict):
        return repr(spec)
    if spec.get("type") == "Sequence":
        return "Sequence[" + ", ".join(_describe(s) for s in spec.get("pretokenizers", [])) + "]"
    if spec.get("type") == "Split":
        return f"Split({(spec.get('pattern') or {}).get('Regex') or spec.get('pattern')!r})"
    return str(spec.get("type"))


def _adds_bos(post: Any, bos_token: str | None, path: Path) -> bool:
    """Whether encoding prepends BOS (the post-processor), as ``tokenizer.ggml.add_bos_token``."""
    if post is None or post.get("type") == "ByteLevel":
        return False
    if post.get("type") != "TemplateProcessing":
        raise _refuse(path, f"post-processor {post.get('type')} has no GGUF equivalent")
    single = post.get("single") or []
    pieces = [
        ("seq", item["Sequence"]["id"])
        if "Sequence" in item
        else ("special", item["SpecialToken"]["id"])
        for item in single
    ]
    if pieces == [("seq", "A")]:
        return False
    if bos_token is not None and pieces == [("special", bos_token), ("seq", "A")]:
        return True
    raise _refuse(path, f"post-processor template {pieces} is neither 'A' nor 'BOS A'")


def read_vocab(model_dir: Path, *, vocab_size: int) -> GgufVocab:
    """Read ``model_dir``'s tokenizer files as GGUF metadata; ``vocab_size`` is the embedding's
    row count (rows past the tokenizer's last id become unused padding tokens)."""
    tokenizer_path = model_dir / "tokenizer.json"
    if not tokenizer_path.is_file():
        raise CommandError(
            f"no tokenizer.json in {model_dir}: export a model directory saved with its "
            "fast tokenizer"
        )
    spec = json.loads(tokenizer_path.read_text(encoding="utf-8"))
    config_path = model_dir / "tokenizer_config.json"
    tok_config = (
        json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    )

    bpe = spec.get("model") or {}
    if bpe.get("type") != "BPE":
        raise _refuse(tokenizer_path, f"tokenizer model {bpe.get('type')} is not BPE")
    if spec.get("normalizer") is not None:
        raise _refuse(tokenizer_path, "it has a normalizer")
    if bpe.get("byte_fallback") or bpe.get("continuing_subword_prefix"):
        raise _refuse(tokenizer_path, "its BPE uses byte fallback or a subword prefix")
    if bpe.get("end_of_word_suffix") or bpe.get("dropout"):
        raise _refuse(tokenizer_path, "its BPE uses an end-of-word suffix or dropout")
    decoder = spec.get("decoder") or {}
    if decoder.get("type") != "ByteLevel":
        raise _refuse(tokenizer_path, f"decoder {decoder.get('type')} is not ByteLevel")
    pre = _pre_tokenizer_preset(spec.get("pre_tokenizer"), tokenizer_path)
    if pre == "llama-bpe" and not bpe.get("ignore_merges"):
        raise _refuse(
            tokenizer_path,
            "its BPE has ignore_merges=false, but llama.cpp's llama-bpe preset always "
            "ignores merges for whole-word tokens",
        )

    vocab: dict[str, int] = dict(bpe.get("vocab") or {})
    added = spec.get("added_tokens") or []
    types: dict[int, int] = {}
    for token in added:
        vocab[token["content"]] = token["id"]
        types[token["id"]] = TOKEN_CONTROL if token.get("special") else TOKEN_USER_DEFINED
    by_id = {i: t for t, i in vocab.items()}
    if len(by_id) != len(vocab):
        raise _refuse(tokenizer_path, "two tokens share an id")
    top = max(by_id) + 1
    if top > vocab_size:
        raise CommandError(
            f"{tokenizer_path} has {top} token ids but the model's embedding has {vocab_size} "
            "rows: the tokenizer does not belong to this model"
        )
    tokens: list[str] = []
    token_types: list[int] = []
    for index in range(vocab_size):
        if index in by_id:
            tokens.append(by_id[index])
            token_types.append(types.get(index, TOKEN_NORMAL))
        else:
            tokens.append(f"[PAD{index}]")
            token_types.append(TOKEN_UNUSED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in bpe.get("merges") or []]

    special_ids: dict[str, int] = {}
    for key in ("bos", "eos", "pad", "unk"):
        name = _token_name(tok_config.get(f"{key}_token"))
        if name is not None and name in vocab:
            special_ids[key] = vocab[name]
    for key, names in FIM_MARKERS.items():
        for name in names:
            if name in vocab:
                special_ids[key] = vocab[name]
                break
    add_bos = _adds_bos(
        spec.get("post_processor"), _token_name(tok_config.get("bos_token")), tokenizer_path
    )
    return GgufVocab(
        model="gpt2",
        pre=pre,
        tokens=tokens,
        token_types=token_types,
        merges=merges,
        add_bos=add_bos,
        special_ids=special_ids,
    )


def _token_name(value: Any) -> str | None:
    """``tokenizer_config.json`` spells a special token as a string or as an AddedToken dict."""
    if isinstance(value, dict):
        content = value.get("content")
        return content if isinstance(content, str) else None
    return value if isinstance(value, str) else None
