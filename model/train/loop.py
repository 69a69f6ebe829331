"""One training loop for pretraining and fine-tuning: AdamW, warmup + cosine, clipping, resumable.

A run directory holds ``state.pt`` (model, optimizer, step, planned steps, RNG states, log) and
``log.jsonl``. Batches are a pure function of ``(seed, step)``, so the data position of a resumed
run is its step: an interrupted run continues with exactly the batches it would have seen.
The same code runs on CPU (fp32) and CUDA (bf16 autocast, fused AdamW, optional torch.compile).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class ModelShape:
    vocab_size: int = 8192
    hidden: int = 512
    layers: int = 6
    heads: int = 8
    intermediate: int = 1408
    context: int = 1024


@dataclass
class LoopConfig:
    run_dir: Path
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    max_steps: int | None = None
    time_budget_s: float | None = None
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 200
    log_every: int = 10
    save_every_s: float = 120.0
    seed: int = 0
    device: str = "auto"
    compile: bool = False
    bf16: str = "auto"  # auto: CUDA, or a CPU with native bf16 matmul (AMX / AVX512-BF16)
    stop_after_steps: int | None = None  # simulate an interruption (tests, dry runs)
    extra: dict = field(default_factory=dict)


def pick_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def wants_bf16(device, mode: str) -> bool:
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"bf16 must be auto, on or off, not {mode!r}")
    if mode == "auto":
        # The engine's check: AMX-BF16 or AVX512-BF16 (bf16 autocast is then ~2x faster than
        # fp32; without them it is many times slower).
        from model.engine.loading import cpu_multiplies_bf16

        return device.type == "cuda" or (device.type == "cpu" and cpu_multiplies_bf16())
    return mode == "on"


def build_model(shape: ModelShape, *, bos_id: int, eos_id: int, pad_id: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=shape.vocab_size,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.heads,
        max_position_embeddings=shape.context,
        tie_word_embeddings=True,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        # Read from **kwargs at run time; the dataclass_transform signature that type checkers see
        # lists only the declared fields.
        attn_implementation="sdpa",  # type: ignore[call-arg]
    )
    return LlamaForCausalLM(config)


def lr_at(step: int, cfg: LoopConfig, max_steps: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, max_steps - cfg.warmup_steps))
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def _rng_state(device) -> dict:
    import random

    import numpy as np
    import torch

    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict, device) -> None:
    import random

    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"])


def _loss(forward, input_ids, labels, use_bf16: bool):
    import torch

    with torch.autocast(input_ids.device.type, torch.bfloat16, enabled=use_bf16):
        logits = forward(input_ids=input_ids).logits
    return torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100
    )


BatchFn = Callable[[int], tuple]  # step -> (input_ids (B, T) int64, labels (B, T) int64)
EvalFn = Callable[[object], dict]  # model -> metrics


def train(
    model,
    cfg: LoopConfig,
    batch_fn: BatchFn,
    eval_fn: EvalFn | None = None,
    *,
    tokens_per_step: int,
) -> dict:
    """Train until ``max_steps`` (or the time budget), resuming from ``run_dir/state.pt``."""
    import torch

    device = pick_device(cfg.device)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    state_path = cfg.run_dir / "state.pt"
    torch.manual_seed(cfg.seed)
    model.to(device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        betas=(0.9, 0.95),
        eps=1e-8,
        fused=device.type == "cuda",
    )
    step = 0
    max_steps = cfg.max_steps
    history: list[dict] = []
    elapsed_before = 0.0
    if state_path.exists():
        saved = torch.load(state_path, map_location="cpu", weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        step = saved["step"]
        # An explicit --max-steps wins over the saved plan: a run can be extended or shortened
        # (the cosine schedule then follows the new length from the current step on).
        if cfg.max_steps is None and saved["max_steps"] is not None:
            max_steps = saved["max_steps"]
        history = saved["history"]
        elapsed_before = saved.get("elapsed_s", 0.0)
        _set_rng_state(saved["rng"], device)
        log.warning("resumed from %s at step %d", state_path, step)
        print(f"resumed from step {step} (planned {max_steps})", flush=True)

    def save() -> None:
        tmp = state_path.with_suffix(".tmp")
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "max_steps": max_steps,
                "history": history,
                "elapsed_s": elapsed_before + (time.time() - started),
                "rng": _rng_state(device),
                "config": {k: str(v) for k, v in asdict(cfg).items()},
            },
            tmp,
        )
        os.replace(tmp, state_path)

    forward = model
    if cfg.compile:
        try:
            forward = torch.compile(model)
        except Exception as exc:  # a missing compiler must not cost the run
            print(f"torch.compile unavailable ({exc}); running eagerly", flush=True)
    use_bf16 = wants_bf16(device, cfg.bf16)
    if use_bf16 and device.type == "cpu":
        print("bf16 autocast on the CPU (native bf16 matmul found)", flush=True)
    log_file = open(cfg.run_dir / "log.jsonl", "a", encoding="utf-8")  # noqa: SIM115
    started = time.time()
    last_save = started
    calibrate_from: tuple[int, float] | None = None
    run_start_step = step
    window_loss = 0.0
    window_count = 0
    window_started = time.time()

    def record(entry: dict) -> None:
        history.append(entry)
        log_file.write(json.dumps(entry) + "\n")
        log_file.flush()

    def run_eval() -> None:
        if eval_fn is None:
            return
        model.eval()
        with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=use_bf16):
            metrics = eval_fn(model)
        model.train()
        entry = {"step": step, "tokens": step * tokens_per_step, **metrics}
        record(entry)
        print(
            "eval "
            + " ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in entry.items()
            ),
            flush=True,
        )

    model.train()
    if max_steps is None and cfg.time_budget_s is None:
        raise ValueError("give max_steps or time_budget_s")
    while max_steps is None or step < max_steps:
        if cfg.stop_after_steps is not None and step - run_start_step >= cfg.stop_after_steps:
            save()
            print(f"stopped at step {step} (interruption requested)", flush=True)
            log_file.close()
            return {"step": step, "max_steps": max_steps, "interrupted": True, "history": history}
        lr = lr_at(step, cfg, max_steps or 10**9)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_sum = 0.0
        for micro in range(cfg.grad_accum):
            input_ids, labels = batch_fn(step * cfg.grad_accum + micro)
            input_ids = input_ids.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            try:
                loss = _loss(forward, input_ids, labels, use_bf16)
                (loss / cfg.grad_accum).backward()
            except Exception as exc:
                if forward is model:
                    raise
                # A compiler failure must not cost the run: fall back to eager mode once.
                print(
                    f"compiled step failed ({type(exc).__name__}: {exc}); running eagerly",
                    flush=True,
                )
                forward = model
                optimizer.zero_grad(set_to_none=True)
                loss = _loss(forward, input_ids, labels, use_bf16)
                (loss / cfg.grad_accum).backward()
            loss_sum += loss.detach()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        window_loss += loss_sum / cfg.grad_accum
        window_count += 1
        now = time.time()
        # Plan the step count from measured speed once compilation and warm-up are behind us.
        if max_steps is None and step - run_start_step == 10:
            calibrate_from = (step, now)
        # (time_budget_s is never None while max_steps is: checked before the loop.)
        if (
            max_steps is None
            and cfg.time_budget_s is not None
            and calibrate_from
            and step - calibrate_from[0] == 20
        ):
            per_step = (now - calibrate_from[1]) / 20
            remaining = cfg.time_budget_s - (now - started) - cfg.extra.get("reserve_s", 30.0)
            max_steps = max(step + 1, step + int(remaining / per_step))
            print(f"planned {max_steps} steps ({per_step * 1000:.1f} ms/step)", flush=True)
        if step % cfg.log_every == 0 or step == max_steps:
            mean_loss = float(window_loss) / window_count
            seconds = now - window_started
            tok_s = window_count * tokens_per_step / max(seconds, 1e-9)
            done = max_steps or step
            eta = (done - step) * seconds / window_count
            entry = {
                "step": step,
                "tokens": step * tokens_per_step,
                "loss": mean_loss,
                "lr": lr,
                "grad_norm": float(grad_norm),
                "tokens_per_s": tok_s,
                "elapsed_s": elapsed_before + now - started,
            }
            record(entry)
            print(
                f"step {step}/{max_steps or '?'} loss {mean_loss:.4f} lr {lr:.2e} "
                f"gn {float(grad_norm):.2f} {tok_s:,.0f} tok/s eta {eta / 60:.1f} min",
                flush=True,
            )
            window_loss, window_count, window_started = 0.0, 0, time.time()
        if cfg.eval_every and step % cfg.eval_every == 0:
            run_eval()
        if now - last_save > cfg.save_every_s:
            save()
            last_save = time.time()
        if cfg.time_budget_s is not None and now - started > cfg.time_budget_s:
            print("time budget reached", flush=True)
            max_steps = step
            break
    if not (cfg.eval_every and step % cfg.eval_every == 0):
        run_eval()
    save()
    log_file.close()
    return {"step": step, "max_steps": max_steps, "interrupted": False, "history": history}


def export_model(
    model, tokenizer_dir: Path, out_dir: Path, *, max_shard_size: str = "45MB"
) -> None:
    """Save bf16 safetensors + tokenizer + generation config: a directory HF and Engine load."""
    import shutil

    import torch
    from transformers import GenerationConfig

    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.to("cpu")
    original_dtype = next(model.parameters()).dtype
    model.to(torch.bfloat16)
    model.save_pretrained(str(out_dir), max_shard_size=max_shard_size)
    model.to(original_dtype)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tokenizer_dir / name).exists():
            shutil.copy(tokenizer_dir / name, out_dir / name)
    GenerationConfig(
        bos_token_id=model.config.bos_token_id,
        eos_token_id=model.config.eos_token_id,
        pad_token_id=model.config.pad_token_id,
        do_sample=True,
        temperature=0.2,
        top_p=0.95,
        max_new_tokens=128,
    ).save_pretrained(str(out_dir))
