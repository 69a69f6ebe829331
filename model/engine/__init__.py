"""The inference engine: batched sampling over a local Hugging Face causal LM (heavy tier).

Modules: ``core`` (the ``Engine``: batching, prefill, the decode loop), ``loading`` (which
implementation loads a directory), ``llama`` + ``tokenizer`` (a torch-only Llama and a
``tokenizers``-only tokenizer, so plain Llama checkpoints load without transformers),
``kv_cache`` (the cache layers), ``attention`` (shared-prefix attention), ``sampling`` (token
choice, stop strings), ``records`` (requests, results, errors). Import the public names from
here.

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

import os

# OpenMP threads that spin while waiting steal the CPU from each other (and from the doctest
# sandbox, which runs beside the engine) on small shared machines: under load, batched decoding
# ran 20x slower with spinning threads than with passive ones. Fully passive threads, though,
# pay a futex wake-up per parallel region: on a quiet 2-core box one n=4 decode step cost
# 25 ms passive vs 15 ms spinning. A short spin (GOMP_SPINCOUNT, overrides the policy's
# spin count of 0) gets the quiet-machine speed without starving anyone for long.
# Both must be set before torch loads, so before the submodules below are imported; the light
# tier imports this package lazily.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GOMP_SPINCOUNT", "100000")

from model.engine.gc_pause import collection_paused

# Importing torch creates hundreds of thousands of objects; the cyclic collector running over
# them again and again made the import ~25 % slower (part of every cold start).
with collection_paused():
    from model.engine.core import DEFAULT_MAX_BATCH_ROWS, PADDING_WASTE_LIMIT, Engine, pick_device
    from model.engine.records import (
        EngineLoadError,
        EngineStats,
        GeneratedCandidate,
        GenerationCancelled,
        GenerationRequest,
    )

__all__ = [
    "DEFAULT_MAX_BATCH_ROWS",
    "PADDING_WASTE_LIMIT",
    "Engine",
    "EngineLoadError",
    "EngineStats",
    "GeneratedCandidate",
    "GenerationCancelled",
    "GenerationRequest",
    "pick_device",
]
