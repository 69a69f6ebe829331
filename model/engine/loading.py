"""Load a model directory: the engine's torch-only Llama when it can, transformers otherwise.

Importing transformers and building its model costs about as long as everything else of an
editor's first completion together (~1.9 s of a ~3.4 s cold start on a 2-core laptop CPU), so
a plain Llama checkpoint with a plain ``tokenizer.json`` is read with ``safetensors`` and
``tokenizers`` into ``model.engine.llama.TorchLlama`` instead. Everything else loads through
``AutoModelForCausalLM`` / ``AutoTokenizer`` as before. ``DOCOMPLETE_MODEL_IMPL`` (or
``Engine.load(implementation=…)``) forces one side: ``torch``, ``transformers``, or ``auto``.

``DOCOMPLETE_MATMUL_DTYPE`` (or ``Engine.load(matmul_dtype=…)``) picks the dtype of the torch
Llama's layer projections on the CPU: ``auto`` (the default: bf16 where the CPU multiplies bf16
natively, AMX or AVX512-BF16, else float32), ``float32`` (every value as the checkpoint computes
in fp32) or ``bfloat16``. One default for every caller, so ``eval run`` and ``serve`` measure
and serve the arithmetic the editor's embedded engine uses. See ``TorchLlama.use_matmul_dtype``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from model.engine.gc_pause import collection_paused
from model.engine.records import EngineLoadError

log = logging.getLogger(__name__)

IMPLEMENTATION_ENV = "DOCOMPLETE_MODEL_IMPL"
IMPLEMENTATIONS = ("auto", "torch", "transformers")
MATMUL_DTYPE_ENV = "DOCOMPLETE_MATMUL_DTYPE"
MATMUL_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
DEFAULT_MATMUL_DTYPE = "auto"


@dataclass(frozen=True)
class LoadedModel:
    model: Any
    tokenizer: Any
    #: "torch" (``model.engine.llama``) or "transformers".
    implementation: str
    #: Why the torch-only path was not taken (None when it was, or was not tried).
    fallback_reason: str | None = None


def chosen_implementation(requested: str | None = None) -> str:
    """``requested``, else ``$DOCOMPLETE_MODEL_IMPL``, else ``auto``; checked."""
    value = (requested or os.environ.get(IMPLEMENTATION_ENV, "") or "auto").strip().lower()
    if value not in IMPLEMENTATIONS:
        raise EngineLoadError(
            f"unknown model implementation {value!r} (from {IMPLEMENTATION_ENV} or the caller): "
            "use auto, torch or transformers"
        )
    return value


def cpu_multiplies_bf16() -> bool:
    """Whether this x86 CPU has native bf16 matmuls (AMX-BF16 or AVX512-BF16)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            flags = cpuinfo.read()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


def chosen_matmul_dtype(
    requested: str | None, device: torch.device, dtype: torch.dtype
) -> torch.dtype | None:
    """The layer projections' dtype: ``requested``, else ``$DOCOMPLETE_MATMUL_DTYPE``, else the
    default; None means ``dtype`` (always on a GPU, which picks its own dtype)."""
    value = (requested or os.environ.get(MATMUL_DTYPE_ENV, "") or DEFAULT_MATMUL_DTYPE).strip()
    value = value.lower()
    if value not in (*MATMUL_DTYPES, "auto"):
        raise EngineLoadError(
            f"unknown matmul dtype {value!r} (from {MATMUL_DTYPE_ENV} or the caller): "
            "use float32, bfloat16 or auto"
        )
    if device.type != "cpu" or dtype != torch.float32:
        return None
    if value == "auto":
        value = "bfloat16" if cpu_multiplies_bf16() else "float32"
    chosen = MATMUL_DTYPES[value]
    return chosen if chosen != dtype else None


def load_model(
    path: Path,
    device: torch.device,
    dtype: torch.dtype,
    implementation: str = "auto",
    matmul_dtype: torch.dtype | None = None,
) -> LoadedModel:
    """Model and tokenizer of ``path`` on ``device``; raises EngineLoadError (one line).

    ``matmul_dtype`` applies to the torch-only Llama; a transformers model computes in ``dtype``.
    """
    reason: str | None = None
    if implementation != "transformers":
        reason = _torch_only_reason(path)
        if reason is None:
            # Converting the weights is memory-bound: a second OpenMP thread only waits, and
            # on a busy 2-core machine it made loading the bundled model 0.4 s instead of 0.06 s.
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                with collection_paused():
                    loaded = _load_torch_only(path, device, dtype, matmul_dtype)
            except Exception as exc:  # safetensors / tokenizers raise their own types
                loaded = f"{type(exc).__name__}: {exc}".splitlines()[0]
            finally:
                torch.set_num_threads(threads)
            if not isinstance(loaded, str):
                return loaded
            reason = loaded
        if implementation == "torch":
            raise EngineLoadError(
                f"cannot load {path} without transformers: {reason} "
                f"(unset {IMPLEMENTATION_ENV} to load it through transformers)"
            )
        log.info("loading %s through transformers: %s", path, reason)
    model, tokenizer = _load_with_transformers(path, dtype)
    return LoadedModel(model, tokenizer, "transformers", reason)


def _torch_only_reason(path: Path) -> str | None:
    """Why ``path`` cannot take the torch-only path, judged from config.json alone (cheap)."""
    import json

    from model.engine.llama import read_llama_config

    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"unreadable config.json ({exc})"
    shape = read_llama_config(config) if isinstance(config, dict) else "config.json is no object"
    return shape if isinstance(shape, str) else None


def _load_torch_only(
    path: Path, device: torch.device, dtype: torch.dtype, matmul_dtype: torch.dtype | None
) -> LoadedModel | str:
    from model.engine.llama import load_llama
    from model.engine.tokenizer import load_tokenizer_files

    tokenizer = load_tokenizer_files(path)
    if isinstance(tokenizer, str):
        return tokenizer
    model = load_llama(path, device, dtype, matmul_dtype)
    if isinstance(model, str):
        return model
    return LoadedModel(model, tokenizer, "torch")


def _load_with_transformers(path: Path, dtype: torch.dtype) -> tuple[Any, Any]:
    try:
        with collection_paused():
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                str(path), local_files_only=True, dtype=dtype
            )
    except Exception as exc:  # transformers raises many types; the user needs one line
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EngineLoadError(
            f"cannot load the model in {path}: {first_line} "
            "(is it a complete Hugging Face causal-LM directory?)"
        ) from exc
    return model, tokenizer
