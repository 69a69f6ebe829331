"""The Engine: loads a model, batches requests, prefills prompts once and runs the decode loop."""

from __future__ import annotations

import inspect
import os
import secrets
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from model.engine.attention import ACTIVE, enable_shared_prefix
from model.engine.kv_cache import make_cache
from model.engine.records import (
    DecodeRow,
    EngineLoadError,
    EngineStats,
    GeneratedCandidate,
    GenerationCancelled,
    GenerationRequest,
)
from model.engine.sampling import cut_at_stop, hit_stop, sample_next, step_uniforms
from model.protocol import FinishReason, SamplingParams

#: A batch may hold at most this many padded token slots per real prompt token.
PADDING_WASTE_LIMIT = 1.25
#: Rows (samples) decoded together at most; more are split into batches run one after another.
DEFAULT_MAX_BATCH_ROWS = 512


def _zeros_for(part: torch.Tensor, count: int, width: int) -> torch.Tensor:
    """Zeros shaped like ``part`` (g, Hkv, Lg, D) but for ``count`` prompts of ``width`` tokens."""
    return part.new_zeros((count, part.shape[1], width, part.shape[3]))


def pick_device(device: str = "auto") -> tuple[torch.device, torch.dtype]:
    """CUDA with bf16 when present (and asked for), else CPU with fp32."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    return dev, dtype


class Engine:
    """Samples candidates from a causal LM; see ``model.engine`` for the conventions."""

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
        positions: int | None = getattr(config, "max_position_embeddings", None)
        tokenizer_limit: int = getattr(tokenizer, "model_max_length", 2048)
        self.max_context = int(positions or tokenizer_limit)
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
        self.shared_prefix = shared_prefix and enable_shared_prefix(model)

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
        # transformers declares ``to`` with ``@wraps(torch.nn.Module.to)``, which makes mypy
        # read the device as the unbound ``self``; the call itself is the documented one.
        model.to(dev).eval()  # type: ignore[arg-type]
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
        rows: list[DecodeRow] = []
        for r in live:
            base_seed = r.params.seed if r.params.seed is not None else secrets.randbits(31)
            max_tokens = min(r.params.max_tokens, self.max_context - r.prompt_tokens)
            rows += [DecodeRow(r, i, base_seed, max_tokens) for i in range(r.params.n)]
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
                logits, temperatures, top_ps, step_uniforms(seeds, sample_indices, step)
            )
            step += 1
            next_list = next_ids.tolist()
            logprob_list = raw_logprobs.tolist()
            top_k = max(row.request.top_logprobs for row in rows)
            top_ids: list[list[int]] = []
            top_values: list[list[float]] = []
            if top_k:  # only when a request asked: a (B, V) top-k per step is not free
                values, indices = torch.log_softmax(logits, dim=-1).topk(top_k, dim=-1)  # (B, k)
                top_ids, top_values = indices.tolist(), values.tolist()
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
                k = request.top_logprobs
                top = tuple(zip(top_ids[i][:k], top_values[i][:k], strict=True)) if k else ()
                row.tops.append(top)
                if request.on_token is not None:
                    request.on_token(row.sample_index, token_id, logprob, top)
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
            ACTIVE.cache = cache if self.shared_prefix else None
            try:
                out = self.model(
                    input_ids=next_ids.unsqueeze(1),  # (B, 1)
                    attention_mask=step_mask,
                    position_ids=positions.unsqueeze(1),  # (B, 1)
                    use_cache=True,
                    **{self._cache_kwarg: cache},
                )
            finally:
                ACTIVE.cache = None
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
        """Encode, then cut from the left so the prompt plus ``max_tokens`` fits the context.

        A BOS token the tokenizer put first stays first: the model always saw it there in
        training, and without it every later logit shifts.
        """
        ids = self.encode(request.prompt)
        room = max(1, self.max_context - min(request.params.max_tokens, self.max_context - 1))
        if len(ids) > room:
            bos = self.tokenizer.bos_token_id
            if bos is not None and ids[0] == bos and room > 1:
                ids = [ids[0], *ids[len(ids) - room + 1 :]]
            else:
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
        all_logits: torch.Tensor | None = None  # (P, V)
        all_mask: torch.Tensor | None = None  # (P, L), left-padded to the longest prompt
        merged: list[tuple[torch.Tensor, torch.Tensor]] = []  # per layer: (P, Hkv, L, D) x 2
        for group in groups:
            group_logits, group_cache, group_mask = self._prefill_group(
                [prompt_ids[i] for i in group], kind, reserve_tokens
            )
            if all_logits is None or all_mask is None:
                all_logits = group_logits.new_empty((count, group_logits.shape[-1]))
                all_mask = group_mask.new_zeros((count, width))
                merged = [
                    (
                        _zeros_for(layer.prompt_keys, count, width),
                        _zeros_for(layer.prompt_values, count, width),
                    )
                    for layer in group_cache.layers
                ]  # zeros where padding
            index = torch.tensor(group, device=self.device)
            all_logits[index] = group_logits
            all_mask[index, width - group_mask.shape[1] :] = group_mask  # left padding
            for (keys, values), layer in zip(merged, group_cache.layers, strict=True):
                # (g, Hkv, Lg, D) group part -> the right end of those prompts' rows
                keys[index, :, width - layer.prompt_keys.shape[2] :] = layer.prompt_keys
                values[index, :, width - layer.prompt_values.shape[2] :] = layer.prompt_values
        assert all_logits is not None and all_mask is not None  # prompt_ids is never empty
        cache = make_cache(self.model.config, kind, reserve_tokens)
        for layer, (keys, values) in zip(cache.layers, merged, strict=True):
            layer.lazy_initialization(keys, values)
            layer.prompt_keys, layer.prompt_values = keys, values
            layer.keys, layer.values = keys, values
        return all_logits, cache, all_mask, all_mask.sum(dim=1)

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
        cache = make_cache(self.model.config, kind, reserve_tokens)
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

    #: The decode loop's token choice (a static method so tests can call it on an engine).
    _sample = staticmethod(sample_next)

    def _hit_stop(self, row: DecodeRow) -> bool:
        """Whether a stop string appears in the text around the newest token."""
        return hit_stop(row.token_ids, row.request.params.stop, self.decode)

    def _finish(
        self, row: DecodeRow, reason: FinishReason, *, generated: int = 0
    ) -> GeneratedCandidate:
        ids, logprobs = row.token_ids, row.logprobs
        text = self.decode(ids)
        if reason == "stop" and row.request.params.stop:
            text, ids, logprobs = cut_at_stop(
                text, ids, logprobs, row.request.params.stop, self.decode
            )
        return GeneratedCandidate(
            text=text,
            token_ids=tuple(ids),
            token_logprobs=tuple(float(lp) for lp in logprobs),
            finish_reason=reason,
            tokens=self.token_texts(ids),
            generated_tokens=len(row.token_ids) + generated,
            top_logprobs=tuple(row.tops[: len(ids)]),
        )
