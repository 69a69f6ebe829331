"""The Engine: loads a model, batches requests, prefills prompts once and runs the decode loop."""

from __future__ import annotations

import inspect
import os
import secrets
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from model.engine.attention import ACTIVE, enable_shared_prefix
from model.engine.batching import PADDING_WASTE_LIMIT, length_buckets
from model.engine.kv_cache import make_cache
from model.engine.loading import chosen_implementation, chosen_matmul_dtype, load_model
from model.engine.records import (
    DecodeRow,
    EngineLoadError,
    EngineStats,
    GeneratedCandidate,
    GenerationCancelled,
    GenerationRequest,
)
from model.engine.sampling import (
    cut_at,
    hit_stop,
    left_scope,
    sample_next,
    scope_cut,
    step_uniforms,
    stop_offset,
)
from model.engine.threads import ThreadTuner
from model.protocol import FinishReason, SamplingParams

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
        # The engine's own Llama (``model.engine.llama``) builds its caches and reads the shared
        # prompts itself; a transformers model gets our attention function registered.
        self._own_model = hasattr(model, "new_cache")
        self.implementation = "torch" if self._own_model else "transformers"
        self.shared_prefix = shared_prefix and (self._own_model or enable_shared_prefix(model))
        self.thread_tuner: ThreadTuner | None = None  # set by ``load(threads="auto")``

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        path: str | Path,
        device: str = "auto",
        dtype: torch.dtype | None = None,
        *,
        shared_prefix: bool = True,
        threads: int | str | None = None,
        implementation: str | None = None,
        matmul_dtype: str | None = None,
    ) -> Engine:
        """Load a local Hugging Face causal-LM directory; never downloads.

        ``shared_prefix=False`` copies each prompt's KV cache to its samples instead of sharing
        it in attention (the portable path, used automatically for unknown architectures).
        ``threads`` sets torch's CPU threads for this process (default: at most one per core);
        ``"auto"`` lets a ``ThreadTuner`` choose between one per core and one while decoding.
        ``implementation``: ``"torch"`` (the engine's own Llama, no transformers import),
        ``"transformers"``, or ``"auto"`` (the first when the checkpoint allows it); default
        ``$DOCOMPLETE_MODEL_IMPL`` or auto (see ``model.engine.loading``).
        ``matmul_dtype``: ``"float32"``, ``"bfloat16"`` or ``"auto"`` for the torch Llama's
        layer projections on the CPU; default ``$DOCOMPLETE_MATMUL_DTYPE`` or auto (bf16 where
        the CPU multiplies it natively).
        """
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
        dtype = dtype or default_dtype
        loaded = load_model(
            path,
            dev,
            dtype,
            chosen_implementation(implementation),
            chosen_matmul_dtype(matmul_dtype, dev, dtype),
        )
        model = loaded.model
        # transformers declares ``to`` with ``@wraps(torch.nn.Module.to)``, which makes mypy
        # read the device as the unbound ``self``; the call itself is the documented one.
        model.to(dev).eval()  # type: ignore[arg-type]
        cores = os.cpu_count() or 1
        if isinstance(threads, int):
            torch.set_num_threads(max(1, threads))
        elif dev.type == "cpu" and torch.get_num_threads() > cores:
            torch.set_num_threads(cores)
        engine = cls(model, loaded.tokenizer, name=path.name, shared_prefix=shared_prefix)
        if threads == "auto" and dev.type == "cpu" and torch.get_num_threads() > 1:
            engine.thread_tuner = ThreadTuner((torch.get_num_threads(), 1))
        return engine

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
        ``model.engine.batching``). This is the single generation path: ``generate`` and the model
        server both use it.
        """

        def is_cancelled(r: GenerationRequest) -> bool:
            if r.cancel is not None and r.cancel.is_set():
                r.cancelled, r.results = True, []
            return r.cancelled

        live = [r for r in requests if not is_cancelled(r)]
        prompt_ids = {id(r): self._fit_prompt(r) for r in live}
        for bucket in length_buckets(live, self.shared_prefix, self.max_batch_rows):
            bucket = [r for r in bucket if not is_cancelled(r)]
            if bucket:
                self._decode_batch(bucket, [prompt_ids[id(r)] for r in bucket])

    def _decode_batch(self, live: list[GenerationRequest], prompt_ids: list[list[int]]) -> None:
        """Prefill ``live``'s prompts once, then decode all their samples together."""
        rows: list[DecodeRow] = []
        for r in live:
            base_seed = r.params.seed if r.params.seed is not None else secrets.randbits(31)
            max_tokens = min(r.params.max_tokens, self.max_context - r.prompt_tokens)
            rows += [DecodeRow(r, i, base_seed, max_tokens) for i in range(r.params.n)]
        finished: dict[int, list[tuple[int, GeneratedCandidate]]] = {id(r): [] for r in live}

        reserve = max(row.max_tokens for row in rows)
        prefill_started = time.perf_counter()
        logits, cache, attention_mask, positions = self._prefill(prompt_ids, reserve)
        self.stats.prefill_seconds += time.perf_counter() - prefill_started
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

        # Per request: lengths of the samples that ended on their own, and the token limit its
        # decode budget derives from them (a sample the budget cut does not raise the limit).
        natural_lengths: dict[int, list[int]] = {id(r): [] for r in live}
        budget_limits: dict[int, int] = {}

        def done(row: DecodeRow, candidate: GeneratedCandidate, *, natural: bool = True) -> None:
            request = row.request
            finished[id(request)].append((row.sample_index, candidate))
            if request.on_finish is not None:
                request.on_finish(row.sample_index, candidate)
            if request.budget is not None and natural:
                natural_lengths[id(request)].append(candidate.generated_tokens)
                limit = request.budget.limit(request.params.n, natural_lengths[id(request)])
                if limit is not None:
                    budget_limits[id(request)] = limit

        step = 0
        while rows:
            sample_started = time.perf_counter()
            next_ids, raw_logprobs = self._sample(
                logits, temperatures, top_ps, step_uniforms(seeds, sample_indices, step)
            )
            step += 1
            next_list = next_ids.tolist()
            logprob_list = raw_logprobs.tolist()
            self.stats.sample_seconds += time.perf_counter() - sample_started
            top_k = max(row.request.top_logprobs for row in rows)
            top_ids: list[list[int]] = []
            top_values: list[list[float]] = []
            if top_k:  # only when a request asked
                # log_softmax at the top-k positions without a second (B, V) log_softmax.
                values, indices = logits.topk(top_k, dim=-1)  # (B, k)
                values = values - torch.logsumexp(logits, dim=-1, keepdim=True)
                top_ids, top_values = indices.tolist(), values.tolist()
            keep: list[int] = []
            for i, row in enumerate(rows):
                token_id, logprob = next_list[i], logprob_list[i]
                request = row.request
                if request.cancel is not None and request.cancel.is_set():
                    request.cancelled = True
                    continue
                if request.truncate is not None and request.truncate.is_set():
                    done(row, self._finish(row, "length"), natural=False)
                    continue
                self.stats.generated_tokens += 1
                if token_id in self.eos_token_ids:
                    done(row, self._finish(row, "stop", generated=1))
                    continue
                row.token_ids.append(token_id)
                row.logprobs.append(logprob)
                k = request.top_logprobs
                top = tuple(zip(top_ids[i][:k], top_values[i][:k], strict=True)) if k else ()
                row.tops.append(top)
                if request.on_token is not None:
                    request.on_token(row.sample_index, token_id, logprob, top)
                if (request.params.stop and self._hit_stop(row)) or left_scope(
                    request, row.token_ids, self.decode
                ):
                    done(row, self._finish(row, "stop"))
                elif len(row.token_ids) >= row.max_tokens:
                    done(row, self._finish(row, "length"))
                elif len(row.token_ids) >= budget_limits.get(id(request), row.max_tokens):
                    done(row, self._finish(row, "length"), natural=False)
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
            if self.thread_tuner is not None:
                self.thread_tuner.before_step(len(rows))
            forward_started = time.perf_counter()
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
            forward_seconds = time.perf_counter() - forward_started
            self.stats.forward_seconds += forward_seconds
            if self.thread_tuner is not None:
                self.thread_tuner.after_step(len(rows), forward_seconds)
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
        cache = self._new_cache(kind, reserve_tokens)
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
        cache = self._new_cache(kind, reserve_tokens)
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

    def _new_cache(self, kind: str, reserve_tokens: int) -> Any:
        if self._own_model:
            return self.model.new_cache(kind, reserve_tokens)
        return make_cache(self.model.config, kind, reserve_tokens)

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
        if reason == "stop":
            params = row.request.params
            cuts = [stop_offset(text, params.stop) if params.stop else -1]
            cuts.append(scope_cut(row.request, text))
            cut = min((c for c in cuts if c >= 0), default=-1)
            text, ids, logprobs = cut_at(text, ids, logprobs, cut, self.decode)
        return GeneratedCandidate(
            text=text,
            token_ids=tuple(ids),
            token_logprobs=tuple(float(lp) for lp in logprobs),
            finish_reason=reason,
            tokens=self.token_texts(ids),
            generated_tokens=len(row.token_ids) + generated,
            top_logprobs=tuple(row.tops[: len(ids)]),
        )
