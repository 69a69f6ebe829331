"""Codex-S-style supervised fine-tuning: prompt = signature + docstring, target = body.

Examples are JSONL lines ``{"prompt", "completion", "source"}``. The prompt is what the LSP
server and evalkit send (function source up to and including the docstring's closing line plus
``\\n``); the completion is the body, indented 4 spaces, ending in ``\\n``; EOS follows it. Loss is
computed on the completion and EOS only (prompt labels are -100). Examples are packed into
context-length windows.
"""

from __future__ import annotations

import ast
import builtins
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from model.train.loop import LoopConfig, export_model, train

if TYPE_CHECKING:
    from peft import PeftModel  # optional: only --lora needs it

IGNORE = -100
_BUILTINS = set(dir(builtins))
_STDLIB = set(sys.stdlib_module_names)


# ---------------------------------------------------------------- mining from the corpus


def _assigned_names(func: ast.FunctionDef) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(func):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                names.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names


def _stdlib_imports(tree: ast.Module) -> dict[str, str]:
    """Name bound at module level by a stdlib import -> the import statement."""
    bound: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in _STDLIB:
                    name = (alias.asname or alias.name).split(".")[0]
                    statement = f"import {alias.name}" + (
                        f" as {alias.asname}" if alias.asname else ""
                    )
                    bound[name] = statement
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and node.module.split(".")[0] in _STDLIB
        ):
            for alias in node.names:
                name = alias.asname or alias.name
                statement = f"from {node.module} import {alias.name}" + (
                    f" as {alias.asname}" if alias.asname else ""
                )
                bound[name] = statement
    return bound


def mine_functions(
    text: str, source: str, *, min_body_lines: int = 1, max_body_lines: int = 30
) -> list[dict]:
    """Standalone top-level functions with a docstring whose names resolve to builtins,
    their own parameters/locals, or stdlib imports (those imports go into the prompt)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    lines = text.splitlines()
    imports = _stdlib_imports(tree)
    examples: list[dict] = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef) or node.decorator_list:
            continue
        if node.name.startswith("_") or not node.body:
            continue
        doc = node.body[0]
        if not (
            isinstance(doc, ast.Expr)
            and isinstance(doc.value, ast.Constant)
            and isinstance(doc.value.value, str)
            and len(node.body) > 1
        ):
            continue
        docstring = doc.value.value
        if len(docstring.strip()) < 20:
            continue
        doc_end = doc.end_lineno or doc.lineno
        body_lines = lines[doc_end : node.end_lineno]
        # The docstring must end its line, the body must be indented exactly 4 spaces.
        if not body_lines or not lines[doc_end - 1].rstrip().endswith(('"""', "'''")):
            continue
        first = next((line for line in body_lines if line.strip()), "")
        if not first.startswith("    ") or first.startswith("     "):
            continue
        code_lines = [line for line in body_lines if line.strip()]
        if not (min_body_lines <= len(code_lines) <= max_body_lines):
            continue
        if any("\t" in line for line in body_lines):
            continue
        local = _assigned_names(node)
        needed: list[str] = []
        ok = True
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
                if sub.id in local or sub.id in _BUILTINS:
                    continue
                if sub.id in imports:
                    if imports[sub.id] not in needed:
                        needed.append(imports[sub.id])
                    continue
                ok = False
                break
        if not ok:
            continue
        header = "\n".join(needed) + "\n\n\n" if needed else ""
        prompt = header + "\n".join(lines[node.lineno - 1 : doc_end]) + "\n"
        completion = "\n".join(body_lines).rstrip() + "\n"
        examples.append(
            {
                "prompt": prompt,
                "completion": completion,
                "source": f"mined:{source}:{node.name}",
                "has_doctest": ">>>" in docstring,
            }
        )
    return examples


def mine_corpus(corpus_jsonl: Path) -> Iterator[dict]:
    with open(corpus_jsonl, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            yield from mine_functions(record["text"], record["path"])


def filter_by_doctests(examples: list[dict], *, timeout_s: float = 2.0) -> tuple[list[dict], dict]:
    """Run the doctests of mined functions in evalkit's sandbox; drop those that fail.

    Functions without doctests pass through unchanged; kept doctest-bearing ones get
    ``"doctest_verified": True``.
    """
    from evalkit.doctest_runner import extract_examples, run_doctests

    kept: list[dict] = []
    counts = {"checked": 0, "passed": 0, "failed": 0}
    for example in examples:
        if not example.get("has_doctest"):
            kept.append(example)
            continue
        source = example["prompt"] + example["completion"]
        try:
            func = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef))
        except (SyntaxError, StopIteration):
            counts["failed"] += 1
            continue
        doctests = extract_examples(ast.get_docstring(func, clean=True) or "")
        if not doctests:
            kept.append(example)
            continue
        lines = source.splitlines(keepends=True)
        prelude = "".join(lines[: func.lineno - 1])
        function = "".join(lines[func.lineno - 1 :])
        [verdict] = run_doctests(prelude, [function], doctests, timeout_s=timeout_s)
        counts["checked"] += 1
        if verdict.status == "passed":
            counts["passed"] += 1
            kept.append({**example, "doctest_verified": True})
        else:
            counts["failed"] += 1
    return kept, counts


# ---------------------------------------------------------------- packing and training


def encode_examples(
    tokenizer, examples: list[dict], eos_id: int
) -> list[tuple[list[int], list[int]]]:
    """(ids, labels) per example; labels are -100 on the prompt."""
    prompts = tokenizer.encode_batch([e["prompt"] for e in examples])
    targets = tokenizer.encode_batch([e["completion"] for e in examples])
    encoded = []
    for prompt, target in zip(prompts, targets, strict=True):
        ids = [*prompt.ids, *target.ids, eos_id]
        labels = [IGNORE] * len(prompt.ids) + [*target.ids, eos_id]
        encoded.append((ids, labels))
    return encoded


def pack_windows(encoded: list[tuple[list[int], list[int]]], context: int, seed: int, pad_id: int):
    """Greedily pack shuffled examples into (N, context+1) id/label arrays; long ones are cut."""
    import numpy as np

    order = list(range(len(encoded)))
    random.Random(seed).shuffle(order)
    rows_ids: list[list[int]] = []
    rows_labels: list[list[int]] = []
    cur_ids: list[int] = []
    cur_labels: list[int] = []
    width = context + 1
    for index in order:
        ids, labels = encoded[index]
        ids, labels = ids[:width], labels[:width]
        if len(cur_ids) + len(ids) > width:
            rows_ids.append(cur_ids)
            rows_labels.append(cur_labels)
            cur_ids, cur_labels = [], []
        cur_ids += ids
        cur_labels += labels
    if cur_ids:
        rows_ids.append(cur_ids)
        rows_labels.append(cur_labels)
    id_array = np.full((len(rows_ids), width), pad_id, dtype=np.int64)
    label_array = np.full((len(rows_ids), width), IGNORE, dtype=np.int64)
    for row, (ids, labels) in enumerate(zip(rows_ids, rows_labels, strict=True)):
        id_array[row, : len(ids)] = ids
        label_array[row, : len(labels)] = labels
    return id_array, label_array


def packed_batches(id_array, label_array, *, batch_size: int, seed: int):
    """step -> (inputs, labels): every window once per epoch, in a per-epoch shuffled order."""
    import numpy as np
    import torch

    n_rows = len(id_array)
    orders: dict[int, np.ndarray] = {}

    def batch(step: int):
        picks = []
        for k in range(batch_size):
            global_index = step * batch_size + k
            epoch, offset = divmod(global_index, n_rows)
            if epoch not in orders:
                orders[epoch] = np.random.default_rng([seed, epoch]).permutation(n_rows)
            picks.append(orders[epoch][offset])
        ids = torch.from_numpy(id_array[picks])
        labels = torch.from_numpy(label_array[picks])
        # Position t predicts token t+1: labels shift by one, as in pretraining.
        return ids[:, :-1], labels[:, 1:]

    return batch


def masked_eval(id_array, label_array, *, batch_size: int):
    import torch

    def evaluate(model) -> dict:
        device = next(model.parameters()).device
        nats = 0.0
        count = 0
        for first in range(0, len(id_array), batch_size):
            ids = torch.from_numpy(id_array[first : first + batch_size]).to(device)
            labels = torch.from_numpy(label_array[first : first + batch_size]).to(device)
            logits = model(input_ids=ids[:, :-1]).logits.float()
            nats += float(
                torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.size(-1)),
                    labels[:, 1:].reshape(-1),
                    ignore_index=IGNORE,
                    reduction="sum",
                )
            )
            count += int((labels[:, 1:] != IGNORE).sum())
        return {"val_loss": nats / max(count, 1)}

    return evaluate


def read_examples(paths: list[Path]) -> list[dict]:
    examples: list[dict] = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                record = json.loads(line)
                if not isinstance(record.get("prompt"), str) or not isinstance(
                    record.get("completion"), str
                ):
                    raise ValueError(
                        f"{path}:{number}: each line needs string 'prompt' and 'completion'"
                    )
                examples.append(record)
    return examples


def run_finetune(
    init_dir: Path,
    data_paths: list[Path],
    cfg: LoopConfig,
    *,
    context: int,
    export_dir: Path | None,
    valid_fraction: float = 0.03,
    lora_rank: int = 0,
    max_shard_size: str = "45MB",
) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from model.train.tokenizer import EOS, PAD, load_tokenizer

    examples = read_examples(data_paths)  # validate the data before loading anything heavy
    tokenizer = load_tokenizer(init_dir)
    eos_id = tokenizer.token_to_id(EOS)
    pad_id = tokenizer.token_to_id(PAD)
    random.Random(cfg.seed).shuffle(examples)
    n_valid = max(1, int(len(examples) * valid_fraction))
    valid, train_examples = examples[:n_valid], examples[n_valid:]
    train_ids, train_labels = pack_windows(
        encode_examples(tokenizer, train_examples, eos_id), context, cfg.seed, pad_id
    )
    valid_ids, valid_labels = pack_windows(
        encode_examples(tokenizer, valid, eos_id), context, cfg.seed, pad_id
    )
    supervised = int((train_labels != IGNORE).sum())
    print(
        f"finetune data: {len(train_examples)} train / {len(valid)} valid examples, "
        f"{len(train_ids)} windows, {supervised:,} supervised tokens per epoch",
        flush=True,
    )
    model = AutoModelForCausalLM.from_pretrained(str(init_dir), dtype=torch.float32)
    lora: PeftModel | None = None  # with --lora the loop trains adapters around the model
    if lora_rank:
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as exc:
            raise RuntimeError("--lora needs the 'peft' package: pip install peft") from exc
        lora = get_peft_model(
            model,
            LoraConfig(
                r=lora_rank,
                lora_alpha=2 * lora_rank,
                target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
            ),
        )
    batch_fn = packed_batches(train_ids, train_labels, batch_size=cfg.batch_size, seed=cfg.seed)
    eval_fn = masked_eval(valid_ids, valid_labels, batch_size=cfg.batch_size)
    result = train(
        lora if lora is not None else model,
        cfg,
        batch_fn,
        eval_fn,
        tokens_per_step=cfg.batch_size * cfg.grad_accum * context,
    )
    result["epochs"] = result["step"] * cfg.batch_size * cfg.grad_accum / max(len(train_ids), 1)
    print(f"finetune: {result['epochs']:.2f} epochs", flush=True)
    if export_dir is not None and not result["interrupted"]:
        if lora is not None:  # fold the adapters into the weights: the export is a plain causal LM
            model = lora.merge_and_unload()
        export_model(model, init_dir, export_dir, max_shard_size=max_shard_size)
        print(f"exported to {export_dir}", flush=True)
    return result
