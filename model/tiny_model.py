"""A tiny, randomly initialised Llama-style model + real byte-level BPE tokenizer, built offline.

Tests (through ``tests/fixtures/tiny_model.py``) and ``docomplete bench sampling`` (until the
bundled checkpoint exists) use it: the real transformers code path (``AutoModelForCausalLM`` /
``AutoTokenizer`` from a local directory) without any download.
Its outputs are gibberish, so tests assert mechanics (shapes, determinism, stopping), not quality.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

# A few KB of Python-looking text to train the BPE on; the vocabulary only needs to cover
# indentation, keywords and docstring punctuation so prompts encode into plausible pieces.
_TRAINING_TEXT = '''
def add(a: int, b: int) -> int:
    """Return the sum of a and b.

    >>> add(1, 2)
    3
    """
    return a + b


def has_close_elements(numbers: list[float], threshold: float) -> bool:
    """Check if any two numbers are closer to each other than the threshold."""
    for idx, elem in enumerate(numbers):
        for idx2, elem2 in enumerate(numbers):
            if idx != idx2:
                distance = abs(elem - elem2)
                if distance < threshold:
                    return True
    return False


class Stack:
    """A last-in, first-out container."""

    def __init__(self) -> None:
        self.items: list[object] = []

    def push(self, item: object) -> None:
        self.items.append(item)

    def pop(self) -> object:
        if not self.items:
            raise IndexError("pop from empty stack")
        return self.items.pop()


def fib(n):
    # iterative, so large n does not overflow the stack
    a, b = 0, 1
    while n > 0:
        a, b = b, a + b
        n -= 1
    return a


import os
import sys
from pathlib import Path

if __name__ == "__main__":
    print(fib(10), add(2, 3), sorted([3, 1, 2]), {"key": [1, 2.5, None]})
    with open(os.devnull, "w") as handle:
        handle.write("hello world\\n")
    try:
        value = int(sys.argv[1])
    except (IndexError, ValueError) as exc:
        value = len(str(exc)) % 7
    yield_ = lambda x: x * 2 if x else not x and True or False
'''

SPECIAL_TOKENS = ("<|endoftext|>", "<|pad|>")


def build_tiny_tokenizer(
    path: Path, vocab_size: int = 384, extra_special_tokens: Sequence[str] = ()
) -> None:
    """Train a byte-level BPE on the snippet above and save it as a ``PreTrainedTokenizerFast``.

    ``extra_special_tokens`` (e.g. fill-in-the-middle markers) join the vocabulary as special
    tokens, each encoding as one token.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[*SPECIAL_TOKENS, *extra_special_tokens],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([_TRAINING_TEXT] * 4, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=SPECIAL_TOKENS[0],
        bos_token=SPECIAL_TOKENS[0],
        pad_token=SPECIAL_TOKENS[1],
        additional_special_tokens=list(extra_special_tokens),
    )
    wrapped.save_pretrained(str(path))


def build_tiny_model(
    path: str | Path,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    max_position_embeddings: int = 512,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int | None = None,
    seed: int = 0,
    extra_special_tokens: Sequence[str] = (),
    tie_word_embeddings: bool = False,
    max_shard_size: str | None = None,
) -> Path:
    """Write a tiny random ``LlamaForCausalLM`` + tokenizer into ``path`` and return it
    (``max_shard_size``, e.g. ``"100KB"``: weights split over several safetensors files)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    build_tiny_tokenizer(path, extra_special_tokens=extra_special_tokens)
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=tie_word_embeddings,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    # The default init gives near-uniform logits; a wider output layer (logit std ~2.5) makes
    # greedy choices unambiguous, so "batched equals one-by-one" comparisons are not decided by
    # float rounding, while sampling still produces varied text.
    with torch.no_grad():
        model.lm_head.weight.normal_(0.0, 0.3)
    if max_shard_size is None:
        model.save_pretrained(str(path))
    else:
        model.save_pretrained(str(path), max_shard_size=max_shard_size)
    return path
