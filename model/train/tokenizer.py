"""Byte-level BPE for Python: the v2 ``llama3`` pre-split (llama.cpp knows it) or v1's space runs.

Two pre-tokenizers, chosen with ``--pre-tokenizer``:

* ``llama3`` (v2, default): exactly Llama 3's split regex, which llama.cpp implements as its
  ``llama-bpe`` preset, so the model exports to GGUF and tokenises there as in transformers.
  A newline never fuses with the next line's indentation (the newline alternative stops at the
  newline, or punctuation before it absorbs it, e.g. ``):`` + newline), so a prompt ending with
  the docstring's closing line and its newline ends on a piece boundary, as in training text.
  Indentation is one token for the run minus one space; the last space joins the next word
  (three spaces, then `` return``), as in GPT-4 and Llama 3.
* ``space-runs`` (v1): newlines, tabs and every run of two or more spaces are isolated (Codex's
  trick), so indentation is whole tokens; no llama.cpp preset matches it.

v2 adds fill-in-the-middle markers (``<|fim_prefix|>``, ``<|fim_suffix|>``, ``<|fim_middle|>``,
Qwen2.5-Coder's names, which ``model/fim.py`` detects).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

BOS = "<|bos|>"
EOS = "<|endoftext|>"
PAD = "<|pad|>"
FIM_PREFIX = "<|fim_prefix|>"
FIM_MIDDLE = "<|fim_middle|>"
FIM_SUFFIX = "<|fim_suffix|>"
FIM_TOKENS = [FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX]
SPECIAL_TOKENS = [EOS, BOS, PAD]
# Runs of spaces that always get a token of their own, whatever BPE learns.
SPACE_RUNS = [" " * n for n in range(2, 33)]
SPLIT_PATTERN = r"\n| {2,}|\t+"
#: Llama 3's pre-split, character for character (llama.cpp's ``llama-bpe`` preset).
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
PRE_TOKENIZERS = ("llama3", "space-runs")
#: ``tokenizer.ggml.pre`` value for each pre-tokenizer llama.cpp implements exactly.
LLAMA_CPP_PRESETS = {"llama3": "llama-bpe"}


def build_tokenizer_model(pre_tokenizer: str = "llama3"):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    if pre_tokenizer == "llama3":
        # ignore_merges: a piece that is itself in the vocabulary is one token, as llama.cpp does
        # for this preset; without it the two could split a rare piece differently.
        tokenizer = Tokenizer(models.BPE(ignore_merges=True))
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    elif pre_tokenizer == "space-runs":
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
            ]
        )
    else:
        raise ValueError(f"unknown pre-tokenizer {pre_tokenizer!r}: use one of {PRE_TOKENIZERS}")
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def train_tokenizer(
    texts: Iterable[str],
    out_dir: Path,
    *,
    vocab_size: int = 8192,
    pre_tokenizer: str = "llama3",
    fim: bool = True,
) -> Path:
    """Train the BPE on ``texts`` and save it as a ``PreTrainedTokenizerFast`` directory."""
    from tokenizers import pre_tokenizers, trainers

    tokenizer = build_tokenizer_model(pre_tokenizer)
    # Both splits isolate runs of spaces (space-runs: every run; llama3: the run minus the space
    # that joins the next word), so BPE learns a token for each common indentation depth.
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS + (FIM_TOKENS if fim else []),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_as_transformers(tokenizer, out_dir)
    return out_dir


def save_as_transformers(tokenizer, out_dir: Path) -> None:
    from transformers import PreTrainedTokenizerFast

    fim = [t for t in FIM_TOKENS if tokenizer.token_to_id(t) is not None]
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=fim,
        clean_up_tokenization_spaces=False,
        model_max_length=1024,
    )
    fast.save_pretrained(str(out_dir))


def load_tokenizer(path: Path):
    """The raw ``tokenizers.Tokenizer`` (fast, no transformers needed)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(Path(path) / "tokenizer.json"))


def space_run_tokens(tokenizer) -> dict[int, int]:
    """Run length -> token id, for the space runs the vocabulary has as a single token."""
    found: dict[int, int] = {}
    for run in SPACE_RUNS:
        ids = tokenizer.encode(run).ids
        if len(ids) == 1:
            found[len(run)] = ids[0]
    return found


def tokens_per_byte(tokenizer, texts: Iterable[str]) -> float:
    total_tokens = 0
    total_bytes = 0
    batch: list[str] = []

    def flush() -> None:
        nonlocal total_tokens
        for encoding in tokenizer.encode_batch(batch):
            total_tokens += len(encoding.ids)
        batch.clear()

    for text in texts:
        batch.append(text)
        total_bytes += len(text.encode("utf-8"))
        if len(batch) >= 256:
            flush()
    flush()
    return total_tokens / max(total_bytes, 1)


def tokenize_to_stream(
    tokenizer, texts: Iterator[str], out_path: Path, *, batch_files: int = 512
) -> dict:
    """Write a uint16 token stream, files separated by EOS; returns counts for the meta file."""
    import numpy as np

    eos_id = tokenizer.token_to_id(EOS)
    n_tokens = 0
    n_bytes = 0
    n_files = 0
    with open(out_path, "wb") as out:
        batch: list[str] = []

        def flush() -> None:
            nonlocal n_tokens
            for encoding in tokenizer.encode_batch(batch):
                ids = np.asarray([*encoding.ids, eos_id], dtype=np.uint16)
                out.write(ids.tobytes())
                n_tokens += len(ids)
            batch.clear()

        for text in texts:
            batch.append(text)
            n_bytes += len(text.encode("utf-8"))
            n_files += 1
            if len(batch) >= batch_files:
                flush()
        flush()
    meta = {"tokens": n_tokens, "bytes": n_bytes, "files": n_files, "dtype": "uint16"}
    Path(str(out_path) + ".json").write_text(json.dumps(meta) + "\n")
    return meta
