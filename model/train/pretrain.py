"""Pretraining data (uint16 token streams) and the ``train tokenize`` / ``train pretrain`` recipes."""

from __future__ import annotations

import json
import math
from pathlib import Path

from model.train.loop import LoopConfig, ModelShape, build_model, export_model, train


def tokenize_corpus(corpus_dir: Path, tokenizer_dir: Path, out_dir: Path) -> dict:
    """``train.jsonl`` / ``valid.jsonl`` -> ``train.bin`` / ``valid.bin`` (+ ``.json`` counts)."""
    from model.train.corpus import iter_corpus_texts
    from model.train.tokenizer import load_tokenizer, tokenize_to_stream

    tokenizer = load_tokenizer(tokenizer_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {}
    for split in ("train", "valid"):
        source = corpus_dir / f"{split}.jsonl"
        result[split] = tokenize_to_stream(
            tokenizer, iter_corpus_texts(source), out_dir / f"{split}.bin"
        )
        print(f"{split}: {result[split]}", flush=True)
    return result


def load_stream(path: Path):
    import numpy as np

    meta = json.loads(Path(str(path) + ".json").read_text())
    return np.memmap(path, dtype=np.uint16, mode="r"), meta


def random_window_batches(tokens, *, batch_size: int, context: int, seed: int):
    """step -> (inputs, labels): random windows, a pure function of (seed, step)."""
    import numpy as np
    import torch

    limit = len(tokens) - context - 1
    if limit <= 0:
        raise ValueError(f"token stream of {len(tokens)} tokens is shorter than one window")

    def batch(step: int):
        rng = np.random.default_rng([seed, step])
        starts = rng.integers(0, limit, batch_size)
        windows = np.stack(
            [np.asarray(tokens[s : s + context + 1], dtype=np.int64) for s in starts]
        )
        data = torch.from_numpy(windows)
        return data[:, :-1], data[:, 1:]

    return batch


def stream_eval(
    tokens, meta: dict, *, context: int, batch_size: int, max_windows: int | None = None
):
    """model -> {"val_loss", "val_bpb"} over consecutive windows of the held-out stream."""
    import numpy as np
    import torch

    n_windows = (len(tokens) - 1) // context
    if max_windows is not None:
        n_windows = min(n_windows, max_windows)
    bytes_per_token = meta["bytes"] / max(meta["tokens"], 1)

    def evaluate(model) -> dict:
        device = next(model.parameters()).device
        total_nats = 0.0
        total_tokens = 0
        for first in range(0, n_windows, batch_size):
            rows = range(first, min(n_windows, first + batch_size))
            data = np.stack(
                [
                    np.asarray(tokens[r * context : r * context + context + 1], dtype=np.int64)
                    for r in rows
                ]
            )
            batch = torch.from_numpy(data).to(device)
            logits = model(input_ids=batch[:, :-1]).logits.float()
            nats = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1), reduction="sum"
            )
            total_nats += float(nats)
            total_tokens += batch[:, 1:].numel()
        loss = total_nats / max(total_tokens, 1)
        return {"val_loss": loss, "val_bpb": loss / math.log(2) / bytes_per_token}

    return evaluate


def run_pretrain(
    tokens_dir: Path,
    tokenizer_dir: Path,
    cfg: LoopConfig,
    shape: ModelShape,
    *,
    export_dir: Path | None,
    max_shard_size: str = "45MB",
    eval_windows: int | None = 256,
) -> dict:
    import torch

    from model.train.tokenizer import BOS, EOS, PAD, load_tokenizer

    tokenizer = load_tokenizer(tokenizer_dir)
    shape.vocab_size = tokenizer.get_vocab_size()
    torch.manual_seed(cfg.seed)  # the initial weights are part of a reproducible run
    model = build_model(
        shape,
        bos_id=tokenizer.token_to_id(BOS),
        eos_id=tokenizer.token_to_id(EOS),
        pad_id=tokenizer.token_to_id(PAD),
    )
    params = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    print(
        f"model: {params / 1e6:.2f}M params ({(params - embedding) / 1e6:.2f}M non-embedding) {shape}",
        flush=True,
    )
    train_tokens, train_meta = load_stream(tokens_dir / "train.bin")
    valid_tokens, valid_meta = load_stream(tokens_dir / "valid.bin")
    print(
        f"data: {train_meta['tokens']:,} train tokens, {valid_meta['tokens']:,} valid tokens",
        flush=True,
    )
    batch_fn = random_window_batches(
        train_tokens, batch_size=cfg.batch_size, context=shape.context, seed=cfg.seed
    )
    eval_fn = stream_eval(
        valid_tokens,
        valid_meta,
        context=shape.context,
        batch_size=cfg.batch_size,
        max_windows=eval_windows,
    )
    (cfg.run_dir).mkdir(parents=True, exist_ok=True)
    (cfg.run_dir / "shape.json").write_text(json.dumps(shape.__dict__) + "\n")
    result = train(
        model,
        cfg,
        batch_fn,
        eval_fn,
        tokens_per_step=cfg.batch_size * cfg.grad_accum * shape.context,
    )
    result["params"] = params
    if export_dir is not None and not result["interrupted"]:
        export_model(model, tokenizer_dir, export_dir, max_shard_size=max_shard_size)
        print(f"exported to {export_dir}", flush=True)
    return result
