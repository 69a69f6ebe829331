"""Byte-level BPE for Python with dedicated tokens for runs of spaces (Codex's indentation trick).

Newlines are always their own token and indentation is a separate token after them. Prompts that
the LSP server and evalkit send end with ``\\n`` (the line after the docstring); if training had
fused ``\\n`` with the next line's indentation, a prompt ending in a bare ``\\n`` would look like
"the next line is not indented" to the model.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

BOS = "<|bos|>"
EOS = "<|endoftext|>"
PAD = "<|pad|>"
SPECIAL_TOKENS = [EOS, BOS, PAD]
# Runs of spaces that always get a token of their own, whatever BPE learns.
SPACE_RUNS = [" " * n for n in range(2, 33)]
SPLIT_PATTERN = r"\n| {2,}|\t+"


def build_tokenizer_model():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def train_tokenizer(texts: Iterable[str], out_dir: Path, *, vocab_size: int = 8192) -> Path:
    """Train the BPE on ``texts`` and save it as a ``PreTrainedTokenizerFast`` directory."""
    from tokenizers import pre_tokenizers, trainers

    tokenizer = build_tokenizer_model()
    # The split pattern isolates every run of spaces, so BPE sees indentation as whole words and
    # learns a merge for each common run length (4, 8, 12, ... and the odd ones in between).
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_as_transformers(tokenizer, out_dir)
    return out_dir


def save_as_transformers(tokenizer, out_dir: Path) -> None:
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
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
