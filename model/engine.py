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

import torch

from model.protocol import Candidate, FinishReason, SamplingParams

log = logging.getLogger(__name__)

#: How many trailing tokens are re-decoded to look for a stop string after each new token.
_STOP_WINDOW_EXTRA_TOKENS = 4
_HASH_MASK = 0xFFFFFFFF


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

    def __init__(self, model: Any, tokenizer: Any, *, name: str = "model") -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.device = next(model.parameters()).device
        self.stats = EngineStats()
        config = model.config
        self.max_context = int(
            getattr(config, "max_position_embeddings", None)
            or getattr(tokenizer, "model_max_length", 2048)
        )
        eos = tokenizer.eos_token_id
        if eos is None:
            eos = getattr(config, "eos_token_id", None)
        eos_ids = eos if isinstance(eos, list) else [] if eos is None else [eos]
        self.eos_token_ids = frozenset(int(e) for e in eos_ids)
        pad = tokenizer.pad_token_id
        self.pad_token_id = int(pad if pad is not None else (eos_ids[0] if eos_ids else 0))
        # transformers 5 renamed ``past_key_values`` to ``cache``; older architectures keep the
        # old name, so pick whichever this model's forward accepts.
        forward_params = inspect.signature(model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in forward_params else "past_key_values"

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls, path: str | Path, device: str = "auto", dtype: torch.dtype | None = None
    ) -> Engine:
        """Load a local Hugging Face causal-LM directory; never downloads."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(path).expanduser()
        if not (path / "config.json").is_file():
            raise EngineLoadError(
                f"no model at {path} (no config.json): pass --model with a local Hugging Face "
                "model directory, or train the bundled one with `docomplete train`"
            )
        dev, default_dtype = pick_device(device)
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
        return cls(model, tokenizer, name=path.name)

    # ------------------------------------------------------------------ helpers
    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def decode(self, token_ids: Sequence[int]) -> str:
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
        """Decode every request (each with its own params) in one batch; fills ``results``.

        This is the single generation path; ``generate`` and the model server both use it.
        """
        live = [r for r in requests if not (r.cancel is not None and r.cancel.is_set())]
        for r in requests:
            if r not in live:
                r.cancelled = True
        if not live:
            return
        prompt_ids = [self._fit_prompt(r) for r in live]
        rows: list[_Row] = []
        for r in live:
            base_seed = r.params.seed if r.params.seed is not None else secrets.randbits(31)
            max_tokens = min(r.params.max_tokens, self.max_context - r.prompt_tokens)
            rows += [_Row(r, i, base_seed, max_tokens) for i in range(r.params.n)]
        finished: dict[int, list[tuple[int, GeneratedCandidate]]] = {id(r): [] for r in live}

        logits, cache, attention_mask, positions = self._prefill(prompt_ids)
        # Share each prompt's cache among its n samples: row order is prompt-major.
        repeats = torch.tensor([r.params.n for r in live], device=self.device)
        row_source = torch.repeat_interleave(torch.arange(len(live), device=self.device), repeats)
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
                attention_mask = attention_mask[index]
                positions = positions[index]
                next_ids = next_ids[index]
                temperatures, top_ps = temperatures[index], top_ps[index]
                cpu_index = index.cpu()
                seeds, sample_indices = seeds[cpu_index], sample_indices[cpu_index]
                rows = [rows[i] for i in keep]
            # One decode step for the surviving rows.
            attention_mask = torch.cat(
                [attention_mask, attention_mask.new_ones((len(rows), 1))], dim=1
            )  # (B, L + step)
            out = self.model(
                input_ids=next_ids.unsqueeze(1),  # (B, 1)
                attention_mask=attention_mask,
                position_ids=positions.unsqueeze(1),  # (B, 1)
                use_cache=True,
                **{self._cache_kwarg: cache},
            )
            positions = positions + 1
            logits = out.logits[:, -1, :].float()  # (B, V)
            self.stats.decode_steps += 1
            self.stats.decoded_rows += len(rows)

        for r in live:
            if r.cancelled:
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
        self, prompt_ids: list[list[int]]
    ) -> tuple[torch.Tensor, Any, torch.Tensor, torch.Tensor]:
        """Run every distinct prompt through the model once, left-padded into one batch."""
        from transformers import DynamicCache

        width = max(len(ids) for ids in prompt_ids)
        batch = torch.full((len(prompt_ids), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
        for i, ids in enumerate(prompt_ids):
            batch[i, width - len(ids) :] = torch.tensor(ids)
            mask[i, width - len(ids) :] = 1
        # Padding positions get id 0 (masked anyway); real tokens count from 0.
        position_ids = (mask.cumsum(dim=1) - 1).clamp(min=0)  # (P, L)
        cache = DynamicCache(config=self.model.config)
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
        next_positions = mask.sum(dim=1).to(self.device)  # (P,)
        return out.logits[:, -1, :].float(), cache, mask.to(self.device), next_positions

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
                sorted_probs, order = probs.sort(dim=-1, descending=True)  # (B, V) each
                mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
                # Keep the smallest prefix whose mass reaches top_p (the first token always).
                sorted_probs = sorted_probs.masked_fill(mass_before >= top_ps.unsqueeze(1), 0.0)
            else:
                sorted_probs, order = probs, None
            cumulative = sorted_probs.double().cumsum(dim=-1)  # (B, V)
            targets = uniforms.to(cumulative.device) * cumulative[:, -1]  # (B,)
            picked = torch.searchsorted(cumulative, targets.unsqueeze(1), right=True)  # (B, 1)
            picked = picked.clamp(max=logits.shape[-1] - 1)
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
