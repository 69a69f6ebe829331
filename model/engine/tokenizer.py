"""A model directory's tokenizer through the ``tokenizers`` library alone (no transformers).

``load_tokenizer_files`` reads ``tokenizer.json`` and ``tokenizer_config.json`` and gives the
subset of a transformers fast tokenizer that the engine, the model server and the tests use
(encode, decode, special tokens, vocabulary). It encodes exactly as transformers'
``TokenizersBackend`` / ``PreTrainedTokenizerFast`` would for the same files, and declines
(returns the reason instead) for anything it would not reproduce: a model-specific tokenizer
class, special tokens missing from the vocabulary.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: Classes whose behaviour is the tokenizer.json's own (nothing model-specific on top).
GENERIC_TOKENIZER_CLASSES = frozenset({"TokenizersBackend", "PreTrainedTokenizerFast"})
#: Named special tokens, in the order transformers lists them in ``all_special_tokens``.
SPECIAL_TOKEN_NAMES = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)
#: transformers' ``model_max_length`` when the config names none.
UNLIMITED_LENGTH = int(1e30)


def _token_text(value: Any) -> str | None:
    """A special token as saved: a string, or an ``AddedToken`` dict with its ``content``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return str(value["content"])
    return None


def _extra_special_tokens(config: dict[str, Any]) -> list[str]:
    """``extra_special_tokens`` (transformers 5; a list, or names to tokens) and the older
    ``additional_special_tokens``, in that order."""
    tokens: list[str] = []
    for key in ("extra_special_tokens", "additional_special_tokens"):
        value = config.get(key) or []
        items = value.values() if isinstance(value, dict) else value
        for item in items:
            text = _token_text(item)
            if text is not None and text not in tokens:
                tokens.append(text)
    return tokens


class TokenizerFiles:
    """The tokenizer of a model directory, with the transformers-style attributes the engine
    reads (``bos_token_id``, ``eos_token_id``, ``pad_token_id``, ``model_max_length``, …)."""

    def __init__(self, backend: Any, config: dict[str, Any]) -> None:
        self.backend_tokenizer = backend
        self.model_max_length = int(config.get("model_max_length") or UNLIMITED_LENGTH)
        named = {name: _token_text(config.get(name)) for name in SPECIAL_TOKEN_NAMES}
        self.bos_token, self.bos_token_id = self._special(named["bos_token"])
        self.eos_token, self.eos_token_id = self._special(named["eos_token"])
        self.pad_token, self.pad_token_id = self._special(named["pad_token"])
        self.unk_token, self.unk_token_id = self._special(named["unk_token"])
        specials: list[str] = []
        for text in [*named.values(), *_extra_special_tokens(config)]:
            if text is not None and text not in specials:
                specials.append(text)
        self.all_special_tokens = specials
        self.all_special_ids = [int(backend.token_to_id(t)) for t in specials]

    def _special(self, text: str | None) -> tuple[str | None, int | None]:
        """A special token and its id (None and None when the config names none)."""
        if text is None:
            return None, None
        return text, self.backend_tokenizer.token_to_id(text)

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": self.encode(text, add_special_tokens=add_special_tokens)}

    def __len__(self) -> int:
        return int(self.backend_tokenizer.get_vocab_size(with_added_tokens=True))

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(self.backend_tokenizer.encode(text, add_special_tokens=add_special_tokens).ids)

    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = False, **_: Any) -> str:
        return str(
            self.backend_tokenizer.decode(list(token_ids), skip_special_tokens=skip_special_tokens)
        )

    def get_vocab(self) -> dict[str, int]:
        return dict(self.backend_tokenizer.get_vocab(with_added_tokens=True))

    def convert_ids_to_tokens(self, ids: int | Sequence[int]) -> str | list[str | None] | None:
        if isinstance(ids, int):
            return self.backend_tokenizer.id_to_token(ids)  # type: ignore[no-any-return]
        return [self.backend_tokenizer.id_to_token(i) for i in ids]

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> int | list[int | None] | None:
        if isinstance(tokens, str):
            return self.backend_tokenizer.token_to_id(tokens)  # type: ignore[no-any-return]
        return [self.backend_tokenizer.token_to_id(t) for t in tokens]


def load_tokenizer_files(path: Path) -> TokenizerFiles | str:
    """The tokenizer saved in ``path``, or why it needs transformers (one line)."""
    tokenizer_file = path / "tokenizer.json"
    config_file = path / "tokenizer_config.json"
    if not tokenizer_file.is_file() or not config_file.is_file():
        return "no tokenizer.json + tokenizer_config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"unreadable tokenizer_config.json ({exc})"
    if not isinstance(config, dict):
        return "tokenizer_config.json is not a JSON object"
    tokenizer_class = config.get("tokenizer_class")
    if tokenizer_class not in GENERIC_TOKENIZER_CLASSES:
        return f"tokenizer class {tokenizer_class!r} may add its own rules"
    from tokenizers import Tokenizer

    try:
        backend = Tokenizer.from_file(str(tokenizer_file))
    except Exception as exc:  # the Rust side raises its own exception type
        return f"tokenizer.json does not load ({exc})"
    # transformers encodes without truncation or padding unless a call asks for them.
    backend.no_truncation()
    backend.no_padding()
    # transformers (re-)adds every special token of the config that tokenizer.json does not hold
    # as a special added token, which changes how text around it splits: leave that to it.
    added = {t.content for t in backend.get_added_tokens_decoder().values() if t.special}
    named = [_token_text(config.get(name)) for name in SPECIAL_TOKEN_NAMES]
    missing = [t for t in [*named, *_extra_special_tokens(config)] if t and t not in added]
    if missing:
        return f"special token {missing[0]!r} is not a special token of tokenizer.json"
    # ``add_bos_token`` / ``add_eos_token`` in the config are ignored: transformers drops them
    # when a tokenizer.json exists (its post-processor decides; none adds nothing).
    return TokenizerFiles(backend, config)
