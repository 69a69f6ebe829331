"""The inference engine: batched sampling over a local Hugging Face causal LM (heavy tier).

What makes it faster than a loop over ``model.generate``:

* each prompt is encoded **once**; its KV cache is then copied to its ``n`` samples
  (``generate(num_return_sequences=n)`` runs the prompt through the model ``n`` times);
* all samples of all prompts decode together in one loop (left padding, an attention mask and
  explicit position ids keep each row correct);
* a sequence that finished (EOS, stop string, its token budget, its request cancelled) leaves
  the batch at once: its rows are cut out of the KV cache, so it costs nothing afterwards;
* the decode loop calls the model's ``forward`` directly and samples itself, without
  ``generate``'s per-step logits-processor and stopping-criteria machinery.

Conventions:

* ``token_logprobs`` are the model's **raw** log-probabilities of the sampled tokens:
  ``log_softmax(logits)`` before temperature and top-p are applied. They measure how likely the
  model finds the text, independent of how it was sampled (what Codex-style ranking needs).
* Randomness is counter-based: the uniform number that picks sample ``i``'s token at step ``t``
  is a hash of ``(seed, i, t)``. Results for a seed therefore do not depend on which other
  prompts or requests share the batch (the model server mixes requests freely). Without a seed
  a fresh random seed is drawn per call.
* A stop string is searched in the decoded text; the text is cut just before its first
  occurrence, and only tokens whose text lies entirely before it are kept in ``token_ids`` /
  ``token_logprobs``. EOS ends a sequence with ``finish_reason="stop"`` and is not kept either.
"""

from __future__ import annotations

import inspect
import logging
import os
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# OpenMP threads that spin while waiting steal the CPU from each other (and from the doctest
# sandbox, which runs beside the engine) on small shared machines: under load, batched decoding
# ran 20x slower with spinning threads than with passive ones. Fully passive threads, though,
# pay a futex wake-up per parallel region: on a quiet 2-core box one n=4 decode step cost
# 25 ms passive vs 15 ms spinning. A short spin (GOMP_SPINCOUNT, overrides the policy's
# spin count of 0) gets the quiet-machine speed without starving anyone for long.
# Both must be set before torch loads; the light tier imports this module lazily.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GOMP_SPINCOUNT", "100000")

import torch

from model.protocol import Candidate, FinishReason, SamplingParams

log = logging.getLogger(__name__)

#: How many trailing tokens are re-decoded to look for a stop string after each new token.
_STOP_WINDOW_EXTRA_TOKENS = 4
_HASH_MASK = 0xFFFFFFFF
#: Tokens considered before falling back to a full sort for top-p (see ``_sample``).
_TOP_P_CANDIDATES = 256
#: A batch may hold at most this many padded token slots per real prompt token.
PADDING_WASTE_LIMIT = 1.25
#: Rows (samples) decoded together at most; more are split into batches run one after another.
DEFAULT_MAX_BATCH_ROWS = 512


class EngineLoadError(RuntimeError):
    """The model directory cannot be loaded; ``str(error)`` is one line naming the fix."""


class GenerationCancelled(RuntimeError):
    """The caller's cancel event was set before generation finished."""


@dataclass(frozen=True)
class GeneratedCandidate:
    """One finished sample: text plus what produced it."""

    text: str
    token_ids: tuple[int, ...]
    token_logprobs: tuple[float, ...]
    finish_reason: FinishReason
    tokens: tuple[str, ...]
    #: Tokens sampled, including any trimmed with a stop string and the EOS token.
    generated_tokens: int

    def to_candidate(self) -> Candidate:
        return Candidate(
            text=self.text,
            token_logprobs=self.token_logprobs,
            finish_reason=self.finish_reason,
            tokens=self.tokens,
        )


@dataclass
class GenerationRequest:
    """One prompt with its own sampling parameters, as the model server's scheduler submits it.

    ``on_token(sample_index, token_id, raw_logprob)`` is called from the engine thread for each
    sampled token (streaming); ``cancel`` drops this request's rows from the batch when set.
    """

    prompt: str
    params: SamplingParams
    cancel: threading.Event | None = None
    on_token: Callable[[int, int, float], None] | None = None
    #: Filled in by the engine: prompt tokens actually used (after left truncation).
    prompt_tokens: int = 0
    cancelled: bool = False
    results: list[GeneratedCandidate] = field(default_factory=list)


@dataclass
class EngineStats:
    """Counters that let tests and /metrics see what the engine really did."""

    prefill_calls: int = 0
    prefill_tokens: int = 0  # prompt tokens run through the model (padding excluded)
    decode_steps: int = 0  # forward calls of the decode loop
    decoded_rows: int = 0  # sum over decode steps of the rows in the batch
    generated_tokens: int = 0


@dataclass
class _Row:
    """Bookkeeping for one sample while it decodes (one row of the batch)."""

    request: GenerationRequest
    sample_index: int
    seed: int
    max_tokens: int
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)


def _select_rows(buffer: torch.Tensor, rows: torch.Tensor, filled: int) -> torch.Tensor:
    """``buffer[rows]`` for a (B, H, capacity, D) buffer of which only ``filled`` columns hold
    data: the same capacity, but only the filled columns are copied.

    When rows are removed the result reuses the buffer's leading rows (no new allocation);
    ``index_select`` gathers into a temporary first, so overlapping source rows are safe.
    """
    kept = buffer[:, :, :filled].index_select(0, rows)  # (B', H, filled, D)
    if rows.shape[0] <= buffer.shape[0]:
        out = buffer[: rows.shape[0]]
    else:
        out = buffer.new_empty((rows.shape[0], *buffer.shape[1:]))
    out[:, :, :filled] = kept
    return out


def _preallocated_layer_class() -> type:
    """A DynamicLayer that writes into buffers sized for the whole generation up front.

    The stock layer grows by ``torch.cat`` every step, copying the whole cache each time; with
    hundreds of rows that copy dominates decoding on CPU.
    """
    from transformers.cache_utils import DynamicLayer

    class PreallocatedLayer(DynamicLayer):
        reserve_tokens = 0

        def __init__(self) -> None:
            super().__init__()
            self._key_buffer: torch.Tensor | None = None
            self._value_buffer: torch.Tensor | None = None
            self._length = 0

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            end = self._length + key_states.shape[-2]
            if self._key_buffer is None or end > self._key_buffer.shape[-2]:
                # (B, H, capacity, D): room for the prompt plus every token still to come.
                batch, heads, _, dim = key_states.shape
                capacity = end + self.reserve_tokens
                keys = key_states.new_empty((batch, heads, capacity, dim))
                values = value_states.new_empty((batch, heads, capacity, value_states.shape[-1]))
                if self._key_buffer is not None:
                    keys[:, :, : self._length] = self._key_buffer[:, :, : self._length]
                    values[:, :, : self._length] = self._value_buffer[:, :, : self._length]
                self._key_buffer, self._value_buffer = keys, values
            self._key_buffer[:, :, self._length : end] = key_states
            self._value_buffer[:, :, self._length : end] = value_states
            self._length = end
            self.keys = self._key_buffer[:, :, :end]  # views, no copy
            self.values = self._value_buffer[:, :, :end]
            return self.keys, self.values

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            if self._key_buffer is not None:
                # Copy only the filled part; the empty tail would double the cost of every
                # row removal early in the generation.
                self._key_buffer = _select_rows(self._key_buffer, indices, self._length)
                self._value_buffer = _select_rows(self._value_buffer, indices, self._length)
                self.keys = self._key_buffer[:, :, : self._length]
                self.values = self._value_buffer[:, :, : self._length]

    return PreallocatedLayer


def _shared_prefix_layer_class() -> type:
    """A KV layer that keeps each prompt's keys once and only the samples' own tokens per row.

    After the prefill, the ``n`` samples of a prompt point at that prompt's keys/values
    (``row_prompt``) instead of holding copies; each row owns only the tokens it generated.
    ``_shared_prefix_attention`` reads both parts, so a prompt's keys are read once per step for
    all its samples rather than once per sample (the prompt usually dwarfs the completion).
    """
    from transformers.cache_utils import DynamicLayer

    class SharedPrefixLayer(DynamicLayer):
        def __init__(self) -> None:
            super().__init__()
            self.prompt_keys: torch.Tensor | None = None  # (P, Hkv, Lp, D)
            self.prompt_values: torch.Tensor | None = None
            self.prompt_valid: torch.Tensor | None = None  # (P, Lp) bool, False on padding
            self.row_prompt: torch.Tensor | None = None  # (B,) prompt of each row
            self.row_slot: torch.Tensor | None = None  # (B,) rank of the row within its prompt
            self.slots = 0  # max rows of one prompt
            self.gen_keys: torch.Tensor | None = None  # (B, Hkv, capacity, D)
            self.gen_values: torch.Tensor | None = None
            self.generated = 0

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            if self.prompt_keys is None:  # the prefill: attention runs as usual over these
                self.prompt_keys, self.prompt_values = key_states, value_states
                self.keys, self.values = key_states, value_states
                return key_states, value_states
            step = self.generated
            self.gen_keys[:, :, step : step + 1] = key_states  # (B, Hkv, 1, D)
            self.gen_values[:, :, step : step + 1] = value_states
            self.generated += 1
            return key_states, value_states

        def get_seq_length(self) -> int:
            if self.prompt_keys is None:
                return 0
            return self.prompt_keys.shape[-2] + self.generated

        def share(self, row_prompt: torch.Tensor, prompt_valid: torch.Tensor, reserve: int):
            """Point rows at their prompts and make room for ``reserve`` generated tokens."""
            assert self.prompt_keys is not None and self.prompt_values is not None
            self.prompt_valid = prompt_valid.bool()
            _, heads, _, dim = self.prompt_keys.shape
            rows = row_prompt.shape[0]
            self.gen_keys = self.prompt_keys.new_empty((rows, heads, reserve, dim))
            self.gen_values = self.prompt_values.new_empty(
                (rows, heads, reserve, self.prompt_values.shape[-1])
            )
            self._set_rows(row_prompt)

        def _set_rows(self, row_prompt: torch.Tensor) -> None:
            # Rows stay prompt-major, so a row's slot is its offset from its prompt's first row.
            self.row_prompt = row_prompt
            counts = torch.bincount(row_prompt, minlength=self.prompt_keys.shape[0])
            first_row = torch.cumsum(counts, 0) - counts
            self.row_slot = (
                torch.arange(row_prompt.shape[0], device=row_prompt.device)
                - (first_row[row_prompt])
            )
            self.slots = int(counts.max())

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            if self.row_prompt is None:
                super().batch_select_indices(indices)
                return
            self.gen_keys = _select_rows(self.gen_keys, indices, self.generated)
            self.gen_values = _select_rows(self.gen_values, indices, self.generated)
            row_prompt = self.row_prompt[indices]
            used = torch.unique(row_prompt)  # sorted
            if used.shape[0] < self.prompt_keys.shape[0]:
                # Every sample of some prompt finished: stop reading that prompt's keys.
                self.prompt_keys = self.prompt_keys[used]
                self.prompt_values = self.prompt_values[used]
                self.prompt_valid = self.prompt_valid[used]
                row_prompt = torch.searchsorted(used, row_prompt)
            self._set_rows(row_prompt)

    return SharedPrefixLayer


_SHARED_PREFIX_ATTENTION = "docomplete_shared_prefix"
_SHARED_PREFIX_ARCHITECTURES = frozenset({"llama", "qwen2", "qwen3", "mistral"})
_LAYER_CLASSES: dict[str, type] = {}


def _layer_class(kind: str) -> type:
    if kind not in _LAYER_CLASSES:
        factory = _shared_prefix_layer_class if kind == "shared" else _preallocated_layer_class
        _LAYER_CLASSES[kind] = factory()
    return _LAYER_CLASSES[kind]


def _shared_prefix_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Decode-step attention over a shared prompt part plus per-row generated part.

    Anything else (prefill, other caches, HF ``generate``) goes to the stock SDPA function.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    active = getattr(_ACTIVE, "cache", None)
    layer = active.layers[module.layer_idx] if active is not None else None
    if layer is None or query.shape[2] != 1 or getattr(layer, "row_prompt", None) is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, **kwargs
        )
    rows, q_heads, _, dim = query.shape
    prompt_keys, prompt_values = layer.prompt_keys, layer.prompt_values
    prompts, kv_heads, _, _ = prompt_keys.shape
    group = q_heads // kv_heads  # query heads per key/value head (GQA)
    scale = scaling if scaling is not None else dim**-0.5
    q = query.reshape(rows, kv_heads, group, dim)  # (B, Hkv, G, D)

    # Prompt part: gather each prompt's rows into one block so its keys are read once.
    slots = layer.slots
    grouped = q.new_zeros((prompts, slots, kv_heads, group, dim))
    grouped[layer.row_prompt, layer.row_slot] = q
    grouped = grouped.permute(0, 2, 1, 3, 4).reshape(prompts, kv_heads, slots * group, dim)
    # Softmax pieces in fp32 even when the cache is bf16/fp16 (GPU); no-ops on CPU fp32.
    scores = torch.matmul(grouped, prompt_keys.transpose(-1, -2)).float() * scale  # (P,Hkv,S*G,Lp)
    scores = scores.masked_fill(~layer.prompt_valid[:, None, None, :], float("-inf"))
    prompt_max = scores.amax(dim=-1, keepdim=True)  # (P, Hkv, S*G, 1)
    weights = torch.exp(scores - prompt_max)
    prompt_sum = weights.sum(dim=-1, keepdim=True)
    prompt_out = torch.matmul(
        weights.to(prompt_values.dtype), prompt_values
    ).float()  # (P,Hkv,S*G,D)

    def to_rows(t: torch.Tensor) -> torch.Tensor:  # (P, Hkv, S*G, X) -> (B, Hkv, G, X)
        t = t.reshape(prompts, kv_heads, slots, group, t.shape[-1]).permute(0, 2, 1, 3, 4)
        return t[layer.row_prompt, layer.row_slot]

    prompt_max, prompt_sum, prompt_out = (
        to_rows(prompt_max),
        to_rows(prompt_sum),
        to_rows(prompt_out),
    )

    # Generated part: every surviving row has generated the same number of tokens, no padding.
    gen_keys = layer.gen_keys[:, :, : layer.generated]  # (B, Hkv, T, D)
    gen_values = layer.gen_values[:, :, : layer.generated]
    gen_scores = torch.matmul(q, gen_keys.transpose(-1, -2)).float() * scale  # (B, Hkv, G, T)
    gen_max = gen_scores.amax(dim=-1, keepdim=True)
    gen_weights = torch.exp(gen_scores - gen_max)
    gen_sum = gen_weights.sum(dim=-1, keepdim=True)
    gen_out = torch.matmul(gen_weights.to(gen_values.dtype), gen_values).float()  # (B, Hkv, G, D)

    # Merge the two softmax pieces (log-sum-exp rescaling).
    both_max = torch.maximum(prompt_max, gen_max)
    prompt_scale = torch.exp(prompt_max - both_max)
    gen_scale = torch.exp(gen_max - both_max)
    out = (prompt_out * prompt_scale + gen_out * gen_scale) / (
        prompt_sum * prompt_scale + gen_sum * gen_scale
    )  # (B, Hkv, G, D)
    return out.to(query.dtype).reshape(rows, 1, q_heads, dim), None  # (B, 1, H, D) like SDPA


#: ``_ACTIVE.cache``: the cache ``_shared_prefix_attention`` reads during an engine forward call
#: (thread-local: several engines may decode in different threads of one process).
_ACTIVE = threading.local()


def _register_shared_prefix_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(_SHARED_PREFIX_ATTENTION, _shared_prefix_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(_SHARED_PREFIX_ATTENTION, sdpa_mask)


def _make_cache(config: Any, kind: str, reserve_tokens: int) -> Any:
    """A DynamicCache whose full-attention layers are ours (``kind``: shared or preallocated).

    Other layer kinds (sliding windows, recurrent states) keep their stock implementation.
    """
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    cache = DynamicCache(config=config)
    if cache.layers and all(type(layer) is DynamicLayer for layer in cache.layers):
        layer_class = _layer_class(kind)
        layers = [layer_class() for _ in cache.layers]
        if kind == "preallocated":
            for layer in layers:
                layer.reserve_tokens = reserve_tokens
        cache.layers = layers
    return cache


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mix (int64 tensor in, values in [0, 2**32) out); constants < 2**31 keep
    every product inside int64."""
    x = x & _HASH_MASK
    x = ((x ^ (x >> 16)) * 0x45D9F3B) & _HASH_MASK
    x = ((x ^ (x >> 16)) * 0x45D9F3B) & _HASH_MASK
    return x ^ (x >> 16)


def _uniforms(seeds: torch.Tensor, sample_indices: torch.Tensor, step: int) -> torch.Tensor:
    """One uniform in [0, 1) per row, a pure function of (seed, sample index, step)."""
    h = _hash32(seeds)
    h = _hash32(h ^ (sample_indices * 0x27D4EB2D & _HASH_MASK))
    h = _hash32(h ^ ((step + 1) * 0x165667B1 & _HASH_MASK))
    return h.to(torch.float64) / float(1 << 32)


def pick_device(device: str = "auto") -> tuple[torch.device, torch.dtype]:
    """CUDA with bf16 when present (and asked for), else CPU with fp32."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    return dev, dtype


class Engine:
    """Samples candidates from a causal LM; see the module docstring for the conventions."""

    def __init__(
        self, model: Any, tokenizer: Any, *, name: str = "model", shared_prefix: bool = True
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.device = next(model.parameters()).device
        self.stats = EngineStats()
        # A fast tokenizer's backend decodes without the Python wrapper's per-call overhead;
        # the stop-string check decodes a few tokens per row per step.
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self._fast_decoder = backend if hasattr(backend, "decode") else None
        self.max_batch_rows = DEFAULT_MAX_BATCH_ROWS
        config = model.config
        self.max_context = int(
            getattr(config, "max_position_embeddings", None)
            or getattr(tokenizer, "model_max_length", 2048)
        )
        # End of sequence: the tokenizer's EOS plus any the model's configs list (some models
        # have several, e.g. an end-of-turn token).
        eos_ids: list[int] = []
        generation_config = getattr(model, "generation_config", None)
        for eos in (
            tokenizer.eos_token_id,
            getattr(config, "eos_token_id", None),
            getattr(generation_config, "eos_token_id", None),
        ):
            eos_ids += eos if isinstance(eos, list) else [] if eos is None else [eos]
        self.eos_token_ids = frozenset(int(e) for e in eos_ids)
        pad = tokenizer.pad_token_id
        self.pad_token_id = int(pad if pad is not None else (eos_ids[0] if eos_ids else 0))
        # transformers 5 renamed ``past_key_values`` to ``cache``; older architectures keep the
        # old name, so pick whichever this model's forward accepts.
        forward_params = inspect.signature(model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in forward_params else "past_key_values"
        self.shared_prefix = shared_prefix and self._enable_shared_prefix()

    def _enable_shared_prefix(self) -> bool:
        """Switch known decoder architectures to the shared-prompt attention (see above)."""
        config = self.model.config
        if getattr(config, "model_type", None) not in _SHARED_PREFIX_ARCHITECTURES:
            return False
        if getattr(config, "sliding_window", None) or (
            getattr(config, "layer_types", None)
            and any(t != "full_attention" for t in config.layer_types)
        ):
            return False
        if config._attn_implementation not in ("sdpa", "eager", _SHARED_PREFIX_ATTENTION):
            return False
        _register_shared_prefix_attention()
        self.model.set_attn_implementation(_SHARED_PREFIX_ATTENTION)
        return True

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        path: str | Path,
        device: str = "auto",
        dtype: torch.dtype | None = None,
        *,
        shared_prefix: bool = True,
    ) -> Engine:
        """Load a local Hugging Face causal-LM directory; never downloads.

        ``shared_prefix=False`` copies each prompt's KV cache to its samples instead of sharing
        it in attention (the portable path, used automatically for unknown architectures).
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(path).expanduser()
        if not (path / "config.json").is_file():
            raise EngineLoadError(
                f"no model at {path} (no config.json): pass --model with a local Hugging Face "
                "model directory, or train the bundled one with `docomplete train`"
            )
        try:
            dev, default_dtype = pick_device(device)
        except RuntimeError as exc:  # e.g. a malformed device string
            raise EngineLoadError(f"bad device {device!r}: use auto, cpu or cuda ({exc})") from exc
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise EngineLoadError("CUDA is not available on this machine: use --device auto or cpu")
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                str(path), local_files_only=True, dtype=dtype or default_dtype
            )
        except Exception as exc:  # transformers raises many types; the user needs one line
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise EngineLoadError(
                f"cannot load the model in {path}: {first_line} "
                "(is it a complete Hugging Face causal-LM directory?)"
            ) from exc
        model.to(dev).eval()
        if dev.type == "cpu" and torch.get_num_threads() > (os.cpu_count() or 1):
            torch.set_num_threads(os.cpu_count() or 1)
        return cls(model, tokenizer, name=path.name, shared_prefix=shared_prefix)

    # ------------------------------------------------------------------ helpers
    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def decode(self, token_ids: Sequence[int]) -> str:
        if self._fast_decoder is not None:  # the Rust tokenizer directly: 5x less overhead
            return str(self._fast_decoder.decode(list(token_ids), skip_special_tokens=True))
        return str(
            self.tokenizer.decode(
                list(token_ids), skip_special_tokens=True, clean_up_tokenization_spaces=False
            )
        )

    def token_texts(self, token_ids: Sequence[int]) -> tuple[str, ...]:
        """Each token's own text (what OpenAI-style ``logprobs.tokens`` lists)."""
        return tuple(self.decode([t]) for t in token_ids)

    # ------------------------------------------------------------------ public API
    def generate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        cancel: threading.Event | None = None,
    ) -> list[list[GeneratedCandidate]]:
        """``params.n`` candidates per prompt, in prompt order; raises GenerationCancelled."""
        requests = [GenerationRequest(prompt=p, params=params, cancel=cancel) for p in prompts]
        self.run(requests)
        if cancel is not None and cancel.is_set():
            raise GenerationCancelled("generation cancelled")
        return [r.results for r in requests]

    @torch.inference_mode()
    def run(self, requests: Sequence[GenerationRequest]) -> None:
        """Decode every request (each with its own params); fills ``results`` or ``cancelled``.

        Requests share batches (one batch unless prompt lengths differ a lot, see
        ``_length_buckets``). This is the single generation path: ``generate`` and the model
        server both use it.
        """

        def is_cancelled(r: GenerationRequest) -> bool:
            if r.cancel is not None and r.cancel.is_set():
                r.cancelled, r.results = True, []
            return r.cancelled

        live = [r for r in requests if not is_cancelled(r)]
        prompt_ids = {id(r): self._fit_prompt(r) for r in live}
        for bucket in self._length_buckets(live):
            bucket = [r for r in bucket if not is_cancelled(r)]
            if bucket:
                self._decode_batch(bucket, [prompt_ids[id(r)] for r in bucket])

    def _length_buckets(self, requests: list[GenerationRequest]) -> list[list[GenerationRequest]]:
        """Group prompts of similar length, so left padding wastes little compute and memory.

        Every row of a batch attends over the longest prompt's width; one 2,000-token prompt
        would make hundreds of short rows pay for it. Buckets also cap the rows per batch.
        """
        if self.shared_prefix:
            # Padding costs little here: prompts are stored once and prefilled in length
            # groups (see ``_prefill``), so only the row cap splits the work.
            buckets_by_rows: list[list[GenerationRequest]] = [[]]
            rows = 0
            for r in requests:
                if buckets_by_rows[-1] and rows + r.params.n > self.max_batch_rows:
                    buckets_by_rows.append([])
                    rows = 0
                buckets_by_rows[-1].append(r)
                rows += r.params.n
            return [b for b in buckets_by_rows if b]
        ordered = sorted(requests, key=lambda r: r.prompt_tokens)
        buckets: list[list[GenerationRequest]] = []
        current: list[GenerationRequest] = []
        rows = real_tokens = 0
        for r in ordered:
            n = r.params.n
            padded = (rows + n) * r.prompt_tokens  # r is the longest so far (sorted)
            waste_too_high = padded > PADDING_WASTE_LIMIT * (real_tokens + n * r.prompt_tokens)
            if current and (rows + n > self.max_batch_rows or waste_too_high):
                buckets.append(current)
                current, rows, real_tokens = [], 0, 0
            current.append(r)
            rows += n
            real_tokens += n * r.prompt_tokens
        if current:
            buckets.append(current)
        return buckets

    def _decode_batch(self, live: list[GenerationRequest], prompt_ids: list[list[int]]) -> None:
        """Prefill ``live``'s prompts once, then decode all their samples together."""
        rows: list[_Row] = []
        for r in live:
            base_seed = r.params.seed if r.params.seed is not None else secrets.randbits(31)
            max_tokens = min(r.params.max_tokens, self.max_context - r.prompt_tokens)
            rows += [_Row(r, i, base_seed, max_tokens) for i in range(r.params.n)]
        finished: dict[int, list[tuple[int, GeneratedCandidate]]] = {id(r): [] for r in live}

        reserve = max(row.max_tokens for row in rows)
        logits, cache, attention_mask, positions = self._prefill(prompt_ids, reserve)
        # Share each prompt's cache among its n samples: row order is prompt-major.
        repeats = torch.tensor([r.params.n for r in live], device=self.device)
        row_source = torch.repeat_interleave(torch.arange(len(live), device=self.device), repeats)
        if self.shared_prefix:  # rows point at their prompt's keys; nothing is copied
            for layer in cache.layers:
                layer.share(row_source, attention_mask, reserve)
        else:  # rows get their own copy of the prompt's keys
            cache.batch_select_indices(row_source)
        logits = logits[row_source]  # (B, V) with B = sum of n
        attention_mask = attention_mask[row_source]  # (B, L)
        positions = positions[row_source]  # (B,) next position id per row

        temperatures = torch.tensor(
            [row.request.params.temperature for row in rows], device=self.device
        )
        top_ps = torch.tensor([row.request.params.top_p for row in rows], device=self.device)
        seeds = torch.tensor([row.seed for row in rows], dtype=torch.int64)
        sample_indices = torch.tensor([row.sample_index for row in rows], dtype=torch.int64)

        step = 0
        while rows:
            next_ids, raw_logprobs = self._sample(
                logits, temperatures, top_ps, _uniforms(seeds, sample_indices, step)
            )
            step += 1
            next_list = next_ids.tolist()
            logprob_list = raw_logprobs.tolist()
            keep: list[int] = []
            for i, row in enumerate(rows):
                token_id, logprob = next_list[i], logprob_list[i]
                request = row.request
                if request.cancel is not None and request.cancel.is_set():
                    request.cancelled = True
                    continue
                self.stats.generated_tokens += 1
                if token_id in self.eos_token_ids:
                    finished[id(request)].append(
                        (row.sample_index, self._finish(row, "stop", generated=1))
                    )
                    continue
                row.token_ids.append(token_id)
                row.logprobs.append(logprob)
                if request.on_token is not None:
                    request.on_token(row.sample_index, token_id, logprob)
                if request.params.stop and self._hit_stop(row):
                    finished[id(request)].append((row.sample_index, self._finish(row, "stop")))
                elif len(row.token_ids) >= row.max_tokens:
                    finished[id(request)].append((row.sample_index, self._finish(row, "length")))
                else:
                    keep.append(i)
            if not keep:
                break
            if len(keep) < len(rows):
                # Finished rows leave the batch: cut them out of the cache and every per-row tensor.
                index = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(index)
                if not self.shared_prefix:
                    attention_mask = attention_mask[index]
                positions = positions[index]
                next_ids = next_ids[index]
                temperatures, top_ps = temperatures[index], top_ps[index]
                cpu_index = index.cpu()
                seeds, sample_indices = seeds[cpu_index], sample_indices[cpu_index]
                rows = [rows[i] for i in keep]
            # One decode step for the surviving rows.
            if self.shared_prefix:
                step_mask = None  # the shared-prefix attention knows the padding itself
            else:
                attention_mask = torch.cat(
                    [attention_mask, attention_mask.new_ones((len(rows), 1))], dim=1
                )  # (B, L + step)
                step_mask = attention_mask
            _ACTIVE.cache = cache if self.shared_prefix else None
            try:
                out = self.model(
                    input_ids=next_ids.unsqueeze(1),  # (B, 1)
                    attention_mask=step_mask,
                    position_ids=positions.unsqueeze(1),  # (B, 1)
                    use_cache=True,
                    **{self._cache_kwarg: cache},
                )
            finally:
                _ACTIVE.cache = None
            positions = positions + 1
            logits = out.logits[:, -1, :].float()  # (B, V)
            self.stats.decode_steps += 1
            self.stats.decoded_rows += len(rows)

        for r in live:
            if r.cancelled or (r.cancel is not None and r.cancel.is_set()):
                r.cancelled = True
                r.results = []
                continue
            by_index = sorted(finished[id(r)], key=lambda pair: pair[0])
            r.results = [candidate for _, candidate in by_index]

    # ------------------------------------------------------------------ internals
    def _fit_prompt(self, request: GenerationRequest) -> list[int]:
        """Encode, then cut from the left so the prompt plus ``max_tokens`` fits the context."""
        ids = self.encode(request.prompt)
        room = max(1, self.max_context - min(request.params.max_tokens, self.max_context - 1))
        if len(ids) > room:
            ids = ids[-room:]
        if not ids:  # an empty prompt still needs one position to predict from
            bos = self.tokenizer.bos_token_id
            ids = [int(bos if bos is not None else self.pad_token_id)]
        request.prompt_tokens = len(ids)
        return ids

    def _prefill(
        self, prompt_ids: list[list[int]], reserve_tokens: int
    ) -> tuple[torch.Tensor, Any, torch.Tensor, torch.Tensor]:
        """Run every distinct prompt through the model once; returns last-position logits
        (P, V), the cache, the (P, L) prompt mask (1 = real token) and next position ids (P,).

        With the shared-prefix cache, prompts of similar length are prefilled together and
        their keys merged afterwards, so a long prompt does not make short ones compute
        padding; the copying cache prefills all prompts as one left-padded batch.
        """
        kind = "shared" if self.shared_prefix else "preallocated"
        if not self.shared_prefix:
            logits, cache, mask = self._prefill_group(prompt_ids, kind, reserve_tokens)
            return logits, cache, mask, mask.sum(dim=1)
        order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
        groups: list[list[int]] = []
        for i in order:
            group = groups[-1] if groups else None
            if group is not None:
                real = sum(len(prompt_ids[j]) for j in group) + len(prompt_ids[i])
                if len(prompt_ids[i]) * (len(group) + 1) <= PADDING_WASTE_LIMIT * real:
                    group.append(i)
                    continue
            groups.append([i])
        width = max(len(ids) for ids in prompt_ids)
        count = len(prompt_ids)
        logits = mask = None
        merged_keys: list[list[torch.Tensor | None]] = []
        for group in groups:
            group_logits, group_cache, group_mask = self._prefill_group(
                [prompt_ids[i] for i in group], kind, reserve_tokens
            )
            if logits is None:
                logits = group_logits.new_empty((count, group_logits.shape[-1]))
                mask = group_mask.new_zeros((count, width))
                merged_keys = [[None, None] for _ in group_cache.layers]
            index = torch.tensor(group, device=self.device)
            logits[index] = group_logits
            mask[index, width - group_mask.shape[1] :] = group_mask  # left padding
            for slot, layer in zip(merged_keys, group_cache.layers, strict=True):
                for which, part in enumerate((layer.prompt_keys, layer.prompt_values)):
                    if slot[which] is None:  # (P, Hkv, L, D), zeros where padding
                        slot[which] = part.new_zeros((count, part.shape[1], width, part.shape[3]))
                    slot[which][index, :, width - part.shape[2] :] = part
        cache = _make_cache(self.model.config, kind, reserve_tokens)
        for layer, (keys, values) in zip(cache.layers, merged_keys, strict=True):
            layer.lazy_initialization(keys, values)
            layer.prompt_keys, layer.prompt_values = keys, values
            layer.keys, layer.values = keys, values
        assert logits is not None and mask is not None
        return logits, cache, mask, mask.sum(dim=1)

    def _prefill_group(
        self, prompt_ids: list[list[int]], kind: str, reserve_tokens: int
    ) -> tuple[torch.Tensor, Any, torch.Tensor]:
        """One left-padded forward pass over ``prompt_ids``: logits (P, V), cache, mask (P, L)."""
        width = max(len(ids) for ids in prompt_ids)
        batch = torch.full((len(prompt_ids), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
        for i, ids in enumerate(prompt_ids):
            batch[i, width - len(ids) :] = torch.tensor(ids)
            mask[i, width - len(ids) :] = 1
        # Padding positions get id 0 (masked anyway); real tokens count from 0.
        position_ids = (mask.cumsum(dim=1) - 1).clamp(min=0)  # (P, L)
        cache = _make_cache(self.model.config, kind, reserve_tokens)
        out = self.model(
            input_ids=batch.to(self.device),  # (P, L)
            attention_mask=mask.to(self.device),
            position_ids=position_ids.to(self.device),
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_kwarg: cache},
        )
        self.stats.prefill_calls += 1
        self.stats.prefill_tokens += int(mask.sum())
        return out.logits[:, -1, :].float(), cache, mask.to(self.device)

    def _sample(
        self,
        logits: torch.Tensor,  # (B, V) float32
        temperatures: torch.Tensor,  # (B,)
        top_ps: torch.Tensor,  # (B,)
        uniforms: torch.Tensor,  # (B,) float64 on CPU
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Next token per row (greedy where T == 0, else top-p sampling) + its raw log-prob."""
        raw_logprobs = torch.log_softmax(logits, dim=-1)  # (B, V)
        greedy = logits.argmax(dim=-1)  # (B,)
        sampling = temperatures > 0
        if bool(sampling.any()):
            safe_t = torch.where(sampling, temperatures, torch.ones_like(temperatures))
            probs = torch.softmax(logits / safe_t.unsqueeze(1), dim=-1)  # (B, V)
            if bool((top_ps < 1).any()):
                # Sorting the whole vocabulary for hundreds of rows is slow; a trained model's
                # nucleus nearly always lies in its top few hundred tokens, and when the top-k
                # mass reaches top_p the nucleus is exactly inside it.
                k = min(probs.shape[-1], _TOP_P_CANDIDATES)
                sorted_probs, order = probs.topk(k, dim=-1)  # (B, k) each, descending
                if k < probs.shape[-1] and not bool((sorted_probs.sum(-1) >= top_ps).all()):
                    sorted_probs, order = probs.sort(dim=-1, descending=True)  # (B, V) each
                mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
                # Keep the smallest prefix whose mass reaches top_p (the first token always).
                sorted_probs = sorted_probs.masked_fill(mass_before >= top_ps.unsqueeze(1), 0.0)
            else:
                sorted_probs, order = probs, None
            cumulative = sorted_probs.double().cumsum(dim=-1)  # (B, V)
            targets = uniforms.to(cumulative.device) * cumulative[:, -1]  # (B,)
            picked = torch.searchsorted(cumulative, targets.unsqueeze(1), right=True)  # (B, 1)
            # u * total can round up to total: never step past the last kept token.
            last_kept = (sorted_probs > 0).sum(dim=-1, keepdim=True) - 1  # (B, 1)
            picked = torch.minimum(picked, last_kept.clamp(min=0))
            if order is not None:
                picked = order.gather(1, picked)
            sampled = picked.squeeze(1)  # (B,)
            next_ids = torch.where(sampling, sampled, greedy)
        else:
            next_ids = greedy
        return next_ids, raw_logprobs.gather(1, next_ids.unsqueeze(1)).squeeze(1)

    def _hit_stop(self, row: _Row) -> bool:
        """Whether a stop string appears in the text around the newest token."""
        stops = row.request.params.stop
        window = max(len(s) for s in stops) + _STOP_WINDOW_EXTRA_TOKENS
        tail = self.decode(row.token_ids[-window:])
        return any(s in tail for s in stops)

    def _finish(self, row: _Row, reason: FinishReason, *, generated: int = 0) -> GeneratedCandidate:
        ids = row.token_ids
        logprobs = row.logprobs
        text = self.decode(ids)
        if reason == "stop" and row.request.params.stop:
            cut = min(
                (pos for s in row.request.params.stop if (pos := text.find(s)) >= 0),
                default=-1,
            )
            if cut >= 0:
                text = text[:cut]
                # Keep the longest token prefix whose text fits before the stop string.
                kept = len(ids)
                while kept > 0 and len(self.decode(ids[:kept])) > cut:
                    kept -= 1
                ids, logprobs = ids[:kept], logprobs[:kept]
        return GeneratedCandidate(
            text=text,
            token_ids=tuple(ids),
            token_logprobs=tuple(float(lp) for lp in logprobs),
            finish_reason=reason,
            tokens=self.token_texts(ids),
            generated_tokens=len(row.token_ids) + generated,
        )
