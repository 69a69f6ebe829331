"""KV-cache layers for the engine: preallocated buffers, or prompts shared by their samples.

The layers need only torch: the engine's own Llama (``model.engine.llama``) keeps them in a
``LayerCache``. For transformers models they are mixed with transformers' ``DynamicLayer`` in a
``DynamicCache``; those classes are built on first use, so importing the engine does not import
transformers.
"""

from __future__ import annotations

from typing import Any

import torch


def select_rows(buffer: torch.Tensor, rows: torch.Tensor, filled: int) -> torch.Tensor:
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


class CacheLayer:
    """What the engine's layers need of transformers' ``DynamicLayer``: ``keys``/``values``
    (B, H, T, D) once initialised, ``get_seq_length`` and row selection."""

    def __init__(self) -> None:
        super().__init__()  # cooperative: mixed with ``DynamicLayer`` for transformers models
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None
        self.is_initialized = False

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self.keys = key_states.new_empty((0,))
        self.values = value_states.new_empty((0,))
        self.is_initialized = True

    def get_seq_length(self) -> int:
        if self.keys is None or self.keys.dim() < 3:
            return 0
        return int(self.keys.shape[-2])

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.keys is not None and self.values is not None and self.get_seq_length() > 0:
            self.keys = self.keys[indices, ...]
            self.values = self.values[indices, ...]


class PreallocatedLayer(CacheLayer):
    """A layer that writes into buffers sized for the whole generation up front.

    transformers' stock layer grows by ``torch.cat`` every step, copying the whole cache each
    time; with hundreds of rows that copy dominates decoding on CPU.
    """

    reserve_tokens = 0

    def __init__(self) -> None:
        super().__init__()
        # Both None until the first update, then both (B, H, capacity, D).
        self._key_buffer: torch.Tensor | None = None
        self._value_buffer: torch.Tensor | None = None
        self._length = 0

    def update(
        self,
        key_states: torch.Tensor,  # (B, H, T, D)
        value_states: torch.Tensor,
        *args: Any,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self._length + key_states.shape[-2]
        keys, values = self._key_buffer, self._value_buffer
        if keys is None or values is None or end > keys.shape[-2]:
            # (B, H, capacity, D): room for the prompt plus every token still to come.
            batch, heads, _, dim = key_states.shape
            capacity = end + self.reserve_tokens
            grown_keys = key_states.new_empty((batch, heads, capacity, dim))
            grown_values = value_states.new_empty((batch, heads, capacity, value_states.shape[-1]))
            if keys is not None and values is not None:
                grown_keys[:, :, : self._length] = keys[:, :, : self._length]
                grown_values[:, :, : self._length] = values[:, :, : self._length]
            keys, values = grown_keys, grown_values
            self._key_buffer, self._value_buffer = keys, values
        keys[:, :, self._length : end] = key_states
        values[:, :, self._length : end] = value_states
        self._length = end
        self.keys = keys[:, :, :end]  # views, no copy
        self.values = values[:, :, :end]
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        keys, values = self._key_buffer, self._value_buffer
        if keys is not None and values is not None:
            # Copy only the filled part; the empty tail would double the cost of every
            # row removal early in the generation.
            keys = select_rows(keys, indices, self._length)
            values = select_rows(values, indices, self._length)
            self._key_buffer, self._value_buffer = keys, values
            self.keys = keys[:, :, : self._length]
            self.values = values[:, :, : self._length]


class SharedPrefixLayer(CacheLayer):
    """A KV layer that keeps each prompt's keys once and only the samples' own tokens per row.

    After the prefill, the ``n`` samples of a prompt point at that prompt's keys/values
    (``row_prompt``) instead of holding copies; each row owns only the tokens it generated.
    ``model.engine.attention`` reads both parts, so a prompt's keys are read once per step for
    all its samples rather than once per sample (the prompt usually dwarfs the completion).
    """

    def __init__(self) -> None:
        super().__init__()
        # Set by the prefill (or the engine's merge of several prefills):
        self.prompt_keys: torch.Tensor | None = None  # (P, Hkv, Lp, D)
        self.prompt_values: torch.Tensor | None = None
        # Set by ``share``, before the first decode step:
        self.prompt_valid: torch.Tensor | None = None  # (P, Lp) bool, False on padding
        self.row_prompt: torch.Tensor | None = None  # (B,) prompt of each row
        self.row_slot: torch.Tensor | None = None  # (B,) rank of the row within its prompt
        self.slots = 0  # max rows of one prompt
        self.gen_keys: torch.Tensor | None = None  # (B, Hkv, capacity, D)
        self.gen_values: torch.Tensor | None = None
        self.generated = 0

    def update(
        self,
        key_states: torch.Tensor,  # (P, Hkv, Lp, D) at the prefill, (B, Hkv, 1, D) after
        value_states: torch.Tensor,
        *args: Any,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        if self.prompt_keys is None:  # the prefill: attention runs as usual over these
            self.prompt_keys, self.prompt_values = key_states, value_states
            self.keys, self.values = key_states, value_states
            return key_states, value_states
        gen_keys, gen_values = self._generated_buffers()
        step = self.generated
        gen_keys[:, :, step : step + 1] = key_states  # (B, Hkv, 1, D)
        gen_values[:, :, step : step + 1] = value_states
        self.generated += 1
        return key_states, value_states

    def get_seq_length(self) -> int:
        if self.prompt_keys is None:
            return 0
        return self.prompt_keys.shape[-2] + self.generated

    def share(self, row_prompt: torch.Tensor, prompt_valid: torch.Tensor, reserve: int) -> None:
        """Point rows at their prompts and make room for ``reserve`` generated tokens."""
        assert self.prompt_keys is not None and self.prompt_values is not None
        self.prompt_valid = prompt_valid.bool()
        _, heads, _, dim = self.prompt_keys.shape
        rows = row_prompt.shape[0]
        self.gen_keys = self.prompt_keys.new_empty((rows, heads, reserve, dim))
        self.gen_values = self.prompt_values.new_empty(
            (rows, heads, reserve, self.prompt_values.shape[-1])
        )
        self._set_rows(row_prompt, prompts=self.prompt_keys.shape[0])

    def _generated_buffers(self) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.gen_keys is not None and self.gen_values is not None, "share() first"
        return self.gen_keys, self.gen_values

    def _set_rows(self, row_prompt: torch.Tensor, *, prompts: int) -> None:
        # Rows stay prompt-major, so a row's slot is its offset from its prompt's first row.
        self.row_prompt = row_prompt
        counts = torch.bincount(row_prompt, minlength=prompts)  # (P,) rows per prompt
        first_row = torch.cumsum(counts, 0) - counts  # (P,)
        self.row_slot = (
            torch.arange(row_prompt.shape[0], device=row_prompt.device) - (first_row[row_prompt])
        )  # (B,)
        self.slots = int(counts.max())

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.row_prompt is None:
            super().batch_select_indices(indices)
            return
        # ``share`` ran, so every prompt and generated tensor is set.
        gen_keys, gen_values = self._generated_buffers()
        prompt_keys, prompt_values = self.prompt_keys, self.prompt_values
        prompt_valid = self.prompt_valid
        assert prompt_keys is not None and prompt_values is not None
        assert prompt_valid is not None
        self.gen_keys = select_rows(gen_keys, indices, self.generated)
        self.gen_values = select_rows(gen_values, indices, self.generated)
        row_prompt = self.row_prompt[indices]
        used = torch.unique(row_prompt)  # sorted
        if used.shape[0] < prompt_keys.shape[0]:
            # Every sample of some prompt finished: stop reading that prompt's keys.
            prompt_keys = self.prompt_keys = prompt_keys[used]
            self.prompt_values = prompt_values[used]
            self.prompt_valid = prompt_valid[used]
            row_prompt = torch.searchsorted(used, row_prompt)
        self._set_rows(row_prompt, prompts=prompt_keys.shape[0])


#: The layer class per cache kind, for the engine's own models.
LAYER_KINDS: dict[str, type[CacheLayer]] = {
    "shared": SharedPrefixLayer,
    "preallocated": PreallocatedLayer,
}


class LayerCache:
    """The cache of the engine's own models: one layer per decoder layer (torch only)."""

    def __init__(self, layers: list[Any]) -> None:
        self.layers = layers

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        for layer in self.layers:
            layer.batch_select_indices(indices)


def make_layer_cache(num_layers: int, kind: str, reserve_tokens: int) -> LayerCache:
    """A ``LayerCache`` of ``num_layers`` layers of ``kind`` (shared or preallocated)."""
    layers: list[Any] = [LAYER_KINDS[kind]() for _ in range(num_layers)]
    if kind == "preallocated":
        for layer in layers:
            layer.reserve_tokens = reserve_tokens
    return LayerCache(layers)


_TRANSFORMERS_LAYER_CLASSES: dict[str, type] = {}


def _transformers_layer_class(kind: str) -> type:
    """``kind``'s layer mixed with transformers' ``DynamicLayer`` (the interface its models call)."""
    if kind not in _TRANSFORMERS_LAYER_CLASSES:
        from transformers.cache_utils import DynamicLayer

        base = LAYER_KINDS[kind]
        _TRANSFORMERS_LAYER_CLASSES[kind] = type(base.__name__, (base, DynamicLayer), {})
    return _TRANSFORMERS_LAYER_CLASSES[kind]


def make_cache(config: Any, kind: str, reserve_tokens: int) -> Any:
    """A transformers ``DynamicCache`` whose full-attention layers are ours (``kind``: shared or
    preallocated). Other layer kinds (sliding windows, recurrent states) keep their stock
    implementation.
    """
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    cache = DynamicCache(config=config)
    if cache.layers and all(type(layer) is DynamicLayer for layer in cache.layers):
        layer_class = _transformers_layer_class(kind)
        layers = [layer_class() for _ in cache.layers]
        if kind == "preallocated":
            for layer in layers:
                layer.reserve_tokens = reserve_tokens
        cache.layers = layers
    return cache
