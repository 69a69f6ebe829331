"""Move a checkpoint to a new tokenizer and keep training it on code (with FIM) and tasks (v2 on CPU).

Two steps, both resumable or cheap:

* :func:`transfer_vocabulary` gives every token of the new vocabulary an embedding from the old
  model: a token that exists in the old vocabulary keeps its row; any other one gets the mean of
  the rows of its old-BPE pieces (byte-level strings are tokenised by the old BPE model
  directly, so no text round trip is involved); the FIM markers get the mean embedding. The
  transformer blocks are kept as they are. (Fast vocabulary transfer, Gee et al. 2022.)
* :func:`run_adapt` continues training on one stream that mixes
  - **code**: a random span of a random corpus file (files weighted by size), loss on every
    token; a share of spans is FIM-transformed at character level (Bavarian et al. 2022): two
    random cut points, then PSM ``<pre> prefix <suf> suffix <mid> middle <eos>`` or SPM
    ``<pre> <suf> suffix <mid> prefix middle <eos>``;
  - **tasks**: prompt → body examples packed into windows, loss on the body and EOS only; a
    share of them in PSM form with the next function of the window as the suffix, which is what
    the LSP sends when code follows the cursor.
  Every row is a pure function of ``(seed, step, row)``, so a resumed run sees the batches it
  would have seen.
"""

from __future__ import annotations

import bisect
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from model.train.loop import LoopConfig, export_model, train

IGNORE = -100
#: Characters per token of the v2 tokenizer on code (1 / 0.285), used to size code spans.
CHARS_PER_TOKEN = 3.5


# ---------------------------------------------------------------- vocabulary transfer


def transfer_vocabulary(old_dir: Path, tokenizer_dir: Path, out_dir: Path) -> dict:
    """Write ``out_dir``: the old model with embeddings re-indexed for the new tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM

    from model.train.tokenizer import BOS, EOS, FIM_TOKENS, PAD, load_tokenizer

    old_tok = load_tokenizer(old_dir)
    new_tok = load_tokenizer(tokenizer_dir)
    model = AutoModelForCausalLM.from_pretrained(str(old_dir), dtype=torch.float32)
    old_emb = model.get_input_embeddings().weight.detach().clone()  # type: ignore[operator]
    old_vocab = old_tok.get_vocab()
    new_vocab = new_tok.get_vocab()
    mean = old_emb.mean(0)
    new_emb = torch.empty(len(new_vocab), old_emb.shape[1])
    counts = {"copied": 0, "composed": 0, "fim_markers": 0}
    for token, index in new_vocab.items():
        if token in old_vocab:
            new_emb[index] = old_emb[old_vocab[token]]
            counts["copied"] += 1
        elif token in FIM_TOKENS:
            new_emb[index] = mean
            counts["fim_markers"] += 1
        else:
            pieces = [piece.id for piece in old_tok.model.tokenize(token)]
            new_emb[index] = old_emb[pieces].mean(0) if pieces else mean
            counts["composed"] += 1
    model.resize_token_embeddings(len(new_vocab))
    model.get_input_embeddings().weight.data.copy_(new_emb)  # type: ignore[operator]
    model.tie_weights()
    config = model.config
    config.bos_token_id = new_tok.token_to_id(BOS)
    config.eos_token_id = new_tok.token_to_id(EOS)
    config.pad_token_id = new_tok.token_to_id(PAD)
    export_model(model, tokenizer_dir, out_dir)
    report = {"old_vocab": len(old_vocab), "new_vocab": len(new_vocab), **counts}
    (out_dir / "transfer.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


# ---------------------------------------------------------------- the mixed stream


@dataclass
class MixConfig:
    context: int = 1024
    code_share: float = 0.5  # rows of corpus code; the rest are packed tasks
    fim_rate: float = 0.5  # share of code rows that are FIM-transformed
    spm_rate: float = 0.5  # share of FIM rows in SPM order (the rest PSM)
    task_fim_rate: float = 0.3  # share of tasks written in FIM form
    #: Share of the FIM-form tasks that mask 1-3 lines inside the body (prefix: the prompt and
    #: the lines above; suffix: the lines below); the rest ask for the whole body with the next
    #: function as the suffix. 0 is v2's stream.
    task_infill_share: float = 0.0
    #: Fit FIM code rows into the window by trimming the prefix's start and the suffix's end, so
    #: the middle and its EOS are never cut off (v2's stream cut the row's end instead).
    fim_fit: bool = False


@dataclass
class Markers:
    eos: int
    pad: int
    prefix: int
    middle: int
    suffix: int


class MixedStream:
    """Rows of ``context + 1`` token ids and labels (``IGNORE`` where no loss is taken)."""

    def __init__(
        self,
        tokenizer,
        texts: Sequence[str],
        tasks: Sequence[dict],
        mix: MixConfig,
        seed: int,
    ) -> None:
        from model.train.tokenizer import EOS, FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX, PAD

        self.tokenizer = tokenizer
        self.texts = texts
        self.tasks = tasks
        self.mix = mix
        self.seed = seed
        ids = [tokenizer.token_to_id(t) for t in (EOS, PAD, FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX)]
        if any(i is None for i in ids):
            raise ValueError("the tokenizer has no FIM markers: train it without --no-fim")
        self.markers = Markers(*ids)
        self.cumulative: list[int] = []
        total = 0
        for text in texts:
            total += len(text)
            self.cumulative.append(total)
        self.total_chars = total

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids if text else []

    def row(self, step: int, index: int) -> tuple[list[int], list[int]]:
        rng = random.Random(f"{self.seed}/{step}/{index}")
        if not self.tasks or (self.texts and rng.random() < self.mix.code_share):
            return self.code_row(rng)
        return self.task_row(rng)

    # code --------------------------------------------------------------------------------

    def code_span(self, rng: random.Random) -> str:
        doc = bisect.bisect_right(self.cumulative, rng.randrange(self.total_chars))
        text = self.texts[doc]
        want = int(self.mix.context * CHARS_PER_TOKEN)
        if len(text) <= want:
            return text
        start = rng.randrange(len(text) - want)
        line_start = text.rfind("\n", 0, start) + 1  # spans begin at a line start
        return text[line_start : line_start + want]

    def code_row(self, rng: random.Random) -> tuple[list[int], list[int]]:
        span = self.code_span(rng)
        m = self.markers
        width = self.mix.context + 1
        if rng.random() < self.mix.fim_rate and len(span) > 2:
            a, b = sorted(rng.sample(range(len(span) + 1), 2))
            prefix, middle, suffix = span[:a], span[a:b], span[b:]
            spm = rng.random() < self.mix.spm_rate
            pre, mid, suf = self.encode(prefix), self.encode(middle), self.encode(suffix)
            if self.mix.fim_fit:
                pre, suf = fit_fim(pre, mid, suf, width - 4)
            ids = [*self.fim_ids(pre, mid, suf, spm), m.eos]
        else:
            ids = self.encode(span)
        ids = ids[:width]
        labels = list(ids)
        return ids, labels

    def fim_ids(
        self, prefix: list[int], middle: list[int], suffix: list[int], spm: bool
    ) -> list[int]:
        """PSM ``<pre> P <suf> S <mid> M`` or SPM ``<pre> <suf> S <mid> P M`` (no EOS)."""
        m = self.markers
        if spm:
            return [m.prefix, m.suffix, *suffix, m.middle, *prefix, *middle]
        return [m.prefix, *prefix, m.suffix, *suffix, m.middle, *middle]

    # tasks -------------------------------------------------------------------------------

    def body_infill_example(
        self, rng: random.Random, task: dict
    ) -> tuple[list[int], list[int]] | None:
        """Mask 1-3 whole lines of the body (without the last one's newline, as the infilling
        benchmark and an editor cursor at a line's end do); None for a body without a line."""
        lines = task["completion"].splitlines(keepends=True)
        starts = [i for i, line in enumerate(lines) if line.strip()]
        if not starts:
            return None
        first = rng.choice(starts)
        count = min(rng.choice((1, 1, 1, 2, 3)), len(lines) - first)
        masked = "".join(lines[first : first + count])
        middle = masked.rstrip("\n")
        prefix = task["prompt"] + "".join(lines[:first])
        suffix = masked[len(middle) :] + "".join(lines[first + count :])
        spm = rng.random() < self.mix.spm_rate
        pre, mid = self.encode(prefix), [*self.encode(middle), self.markers.eos]
        head = self.fim_ids(pre, [], self.encode(suffix), spm)
        return [*head, *mid], [IGNORE] * len(head) + mid

    def task_example(self, rng: random.Random) -> tuple[list[int], list[int]]:
        m = self.markers
        task = self.tasks[rng.randrange(len(self.tasks))]
        fim = rng.random() < self.mix.task_fim_rate
        share = self.mix.task_infill_share
        if fim and share > 0 and rng.random() < share:  # no extra draw at 0: v2's stream
            example = self.body_infill_example(rng, task)
            if example is not None:
                return example
        body = [*self.encode(task["completion"]), m.eos]
        prompt = self.encode(task["prompt"])
        if fim:
            after = self.tasks[rng.randrange(len(self.tasks))]
            # The next function of the "file", cut to a quarter window so the body still fits.
            following = self.encode("\n\n" + after["prompt"] + after["completion"])
            following = following[: self.mix.context // 4]
            head = [m.prefix, *prompt, m.suffix, *following, m.middle]
        else:
            head = prompt
        return [*head, *body], [IGNORE] * len(head) + body

    def task_row(self, rng: random.Random) -> tuple[list[int], list[int]]:
        width = self.mix.context + 1
        ids: list[int] = []
        labels: list[int] = []
        for _ in range(64):  # pack until the next example would overflow the window
            example_ids, example_labels = self.task_example(rng)
            if ids and len(ids) + len(example_ids) > width:
                break
            ids += example_ids
            labels += example_labels
            if len(ids) >= width:
                break
        return ids[:width], labels[:width]

    # batches -----------------------------------------------------------------------------

    def batch_fn(self, batch_size: int):
        import torch

        width = self.mix.context + 1

        def batch(step: int):
            id_rows = torch.full((batch_size, width), self.markers.pad, dtype=torch.long)
            label_rows = torch.full((batch_size, width), IGNORE, dtype=torch.long)
            for k in range(batch_size):
                ids, labels = self.row(step, k)
                id_rows[k, : len(ids)] = torch.tensor(ids)
                label_rows[k, : len(labels)] = torch.tensor(labels)
            return id_rows[:, :-1], label_rows[:, 1:]

        return batch


def fit_fim(
    prefix: list[int], middle: list[int], suffix: list[int], room: int
) -> tuple[list[int], list[int]]:
    """Trim the prefix's start, then the suffix's end, until prefix + middle + suffix fit
    ``room`` tokens; the middle is kept whole (it is what the row teaches)."""
    excess = len(prefix) + len(middle) + len(suffix) - room
    if excess <= 0:
        return prefix, suffix
    cut = min(excess, len(prefix))
    prefix, excess = prefix[cut:], excess - cut
    if excess > 0:
        suffix = suffix[: max(0, len(suffix) - excess)]
    return prefix, suffix


# ---------------------------------------------------------------- data loading


def flagged_sources(report_path: Path, eval_sets: Sequence[str] | None = None) -> set[str]:
    """Training sources a ``train decontam-report`` flags as look-alikes of the given eval sets
    (all of them when ``eval_sets`` is None): the examples to leave out to keep those sets clean."""
    summary = json.loads(report_path.read_text())["summary"]
    flagged = summary["flagged_sources"]
    if eval_sets is None:
        return set(flagged)
    sets = {
        str(task)
        for name, entry in summary["eval_sets"].items()
        if name in eval_sets
        for task in entry["look_alikes"]
    }
    return {source for source, tasks in flagged.items() if sets & set(tasks)}


def load_tasks(
    paths: Sequence[Path],
    weights: Sequence[float],
    seed: int,
    exclude_sources: set[str] | frozenset[str] = frozenset(),
) -> list[dict]:
    """Examples from each JSONL, resampled so that each file's share follows ``weights``;
    examples whose ``source`` is in ``exclude_sources`` are left out."""
    from model.train.finetune import read_examples

    per_file = [
        [e for e in read_examples([p]) if str(e.get("source", "")) not in exclude_sources]
        for p in paths
    ]
    for path, examples in zip(paths, per_file, strict=True):
        if not examples:
            raise ValueError(f"{path} has no examples")
    rng = random.Random(seed)
    largest = max(len(e) / w for e, w in zip(per_file, weights, strict=True) if w > 0)
    mixed: list[dict] = []
    for examples, weight in zip(per_file, weights, strict=True):
        want = int(largest * weight)
        if want <= len(examples):
            mixed += rng.sample(examples, want)
        else:
            mixed += examples * (want // len(examples)) + rng.sample(examples, want % len(examples))
    rng.shuffle(mixed)
    return mixed


def held_out_bits_per_byte(
    model_dir: Path, valid_jsonl: Path, context: int, max_windows: int | None = None
) -> dict:
    """Bits per byte of ``model_dir`` on the held-out files, tokenised with its own tokenizer
    (so models with different tokenizers are compared on the same bytes), fp32 on the CPU."""
    import tempfile
    import time

    import torch
    from transformers import AutoModelForCausalLM

    from model.train.corpus import iter_corpus_texts
    from model.train.pretrain import load_stream, stream_eval
    from model.train.tokenizer import load_tokenizer, tokenize_to_stream

    tokenizer = load_tokenizer(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        stream_path = Path(tmp) / "valid.bin"
        tokenize_to_stream(tokenizer, iter_corpus_texts(valid_jsonl), stream_path)
        tokens, meta = load_stream(stream_path)
        evaluate = stream_eval(tokens, meta, context=context, batch_size=8, max_windows=max_windows)
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
        model.eval()
        started = time.time()
        with torch.no_grad():
            metrics = evaluate(model)
    windows = (len(tokens) - 1) // context
    return {
        "model": str(model_dir),
        "bits_per_byte": round(metrics["val_bpb"], 4),
        "tokens_per_byte": round(meta["tokens"] / max(meta["bytes"], 1), 4),
        "windows": windows if max_windows is None else min(windows, max_windows),
        "seconds": round(time.time() - started, 1),
    }


def run_adapt(
    init_dir: Path,
    corpus_dir: Path,
    task_paths: Sequence[Path],
    task_weights: Sequence[float],
    cfg: LoopConfig,
    mix: MixConfig,
    *,
    export_dir: Path | None,
    eval_windows: int = 64,
    valid_tasks: int = 400,
    max_shard_size: str = "45MB",
    exclude_sources: set[str] | frozenset[str] = frozenset(),
) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from model.train.corpus import iter_corpus_texts
    from model.train.finetune import encode_examples, masked_eval, pack_windows
    from model.train.pretrain import load_stream, stream_eval
    from model.train.tokenizer import load_tokenizer, tokenize_to_stream

    tokenizer = load_tokenizer(init_dir)
    tasks = load_tasks(task_paths, task_weights, cfg.seed, exclude_sources)
    valid, train_tasks = tasks[:valid_tasks], tasks[valid_tasks:]
    texts = list(iter_corpus_texts(corpus_dir / "train.jsonl"))
    stream = MixedStream(tokenizer, texts, train_tasks, mix, cfg.seed)
    print(
        f"adapt data: {len(texts):,} files ({stream.total_chars / 1e6:.1f}M chars), "
        f"{len(train_tasks):,} tasks (+{len(valid):,} held out; "
        f"{len(exclude_sources)} flagged sources left out)",
        flush=True,
    )
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    valid_bin = cfg.run_dir / "valid.bin"
    if not valid_bin.exists():
        tokenize_to_stream(tokenizer, iter_corpus_texts(corpus_dir / "valid.jsonl"), valid_bin)
    valid_tokens, valid_meta = load_stream(valid_bin)
    code_eval = stream_eval(
        valid_tokens,
        valid_meta,
        context=mix.context,
        batch_size=cfg.batch_size,
        max_windows=eval_windows,
    )
    eos = stream.markers.eos
    task_ids, task_labels = pack_windows(
        encode_examples(tokenizer, valid, eos), mix.context, cfg.seed, stream.markers.pad
    )
    task_eval = masked_eval(task_ids, task_labels, batch_size=cfg.batch_size)

    def evaluate(model) -> dict:
        metrics = code_eval(model)
        metrics["task_loss"] = task_eval(model)["val_loss"]
        return metrics

    (cfg.run_dir / "mix.json").write_text(
        json.dumps({**mix.__dict__, "tasks": [str(p) for p in task_paths]}) + "\n"
    )
    model = AutoModelForCausalLM.from_pretrained(str(init_dir), dtype=torch.float32)
    result = train(
        model,
        cfg,
        stream.batch_fn(cfg.batch_size),
        evaluate,
        tokens_per_step=cfg.batch_size * cfg.grad_accum * mix.context,
    )
    if export_dir is not None and not result["interrupted"]:
        export_model(model, init_dir, export_dir, max_shard_size=max_shard_size)
        print(f"exported to {export_dir}", flush=True)
    return result
