"""Model v2's CPU route: vocabulary transfer to a new tokenizer, and the mixed code/FIM/task stream."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("tokenizers")

STDLIB = Path(sysconfig.get_paths()["stdlib"])
FILES = ["textwrap.py", "colorsys.py", "bisect.py", "fnmatch.py", "heapq.py"]
TASKS = [
    {
        "prompt": f'def scale_{i}(x):\n    """Multiply x by {i}."""\n',
        "completion": f"    return x * {i}\n",
    }
    for i in range(40)
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    import torch

    from model.train.loop import ModelShape, build_model, export_model
    from model.train.tokenizer import BOS, EOS, PAD, load_tokenizer, train_tokenizer

    root = tmp_path_factory.mktemp("adapt")
    texts = [(STDLIB / name).read_text() for name in FILES]
    corpus = root / "corpus"
    corpus.mkdir()
    for split in ("train", "valid"):
        with open(corpus / f"{split}.jsonl", "w") as out:
            for name, text in zip(FILES, texts, strict=True):
                out.write(json.dumps({"path": name, "text": text}) + "\n")
    old_tok = train_tokenizer(
        texts, root / "tok_v1", vocab_size=500, pre_tokenizer="space-runs", fim=False
    )
    new_tok = train_tokenizer(texts, root / "tok_v2", vocab_size=520)
    tokenizer = load_tokenizer(old_tok)
    torch.manual_seed(0)
    shape = ModelShape(vocab_size=500, hidden=32, layers=2, heads=2, intermediate=64, context=64)
    model = build_model(
        shape,
        bos_id=tokenizer.token_to_id(BOS),
        eos_id=tokenizer.token_to_id(EOS),
        pad_id=tokenizer.token_to_id(PAD),
    )
    export_model(model, old_tok, root / "old")
    tasks = root / "tasks.jsonl"
    tasks.write_text("".join(json.dumps(t) + "\n" for t in TASKS))
    return {"root": root, "corpus": corpus, "new_tok": new_tok, "old": root / "old", "tasks": tasks}


def test_transfer_keeps_shared_tokens_and_composes_the_rest(setup: dict) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from model.train.adapt import transfer_vocabulary
    from model.train.tokenizer import load_tokenizer

    out = setup["root"] / "init"
    report = transfer_vocabulary(setup["old"], setup["new_tok"], out)
    assert report["new_vocab"] == 520 and report["fim_markers"] == 3
    assert report["copied"] > 100 and report["composed"] > 0
    old = AutoModelForCausalLM.from_pretrained(str(setup["old"]), dtype=torch.float32)
    new = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)
    old_tok, new_tok = load_tokenizer(setup["old"]), load_tokenizer(out)
    old_emb = old.get_input_embeddings().weight
    new_emb = new.get_input_embeddings().weight
    assert new_emb.shape[0] == 520 and new.config.eos_token_id == new_tok.token_to_id(
        "<|endoftext|>"
    )
    shared = next(t for t in new_tok.get_vocab() if t in old_tok.get_vocab() and len(t) > 3)
    assert torch.allclose(
        new_emb[new_tok.token_to_id(shared)], old_emb[old_tok.token_to_id(shared)], atol=1e-2
    )
    # The transformer blocks are untouched (bf16 export rounding aside).
    assert torch.allclose(
        new.model.layers[0].mlp.up_proj.weight, old.model.layers[0].mlp.up_proj.weight, atol=1e-2
    )


def test_stream_rows_fim_forms_and_task_loss_mask(setup: dict) -> None:
    from model.train.adapt import IGNORE, MixConfig, MixedStream
    from model.train.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(setup["new_tok"])
    texts = [(STDLIB / name).read_text() for name in FILES]
    mix = MixConfig(context=64, code_share=1.0, fim_rate=1.0, spm_rate=0.5)
    stream = MixedStream(tokenizer, texts, TASKS, mix, seed=3)
    m = stream.markers
    forms = set()
    for index in range(40):
        ids, labels = stream.row(0, index)
        assert len(ids) <= 65 and ids == labels and ids[0] == m.prefix
        forms.add("spm" if ids[1] == m.suffix else "psm")
        assert ids.count(m.middle) <= 1
    assert forms == {"psm", "spm"}
    # Rows are a pure function of (seed, step, row): a resumed run sees the same data.
    assert stream.row(5, 2) == MixedStream(tokenizer, texts, TASKS, mix, seed=3).row(5, 2)

    tasks_only = MixedStream(
        tokenizer, texts, TASKS, MixConfig(context=128, code_share=0.0, task_fim_rate=0.5), seed=1
    )
    saw_fim = False
    for index in range(20):
        ids, labels = tasks_only.row(0, index)
        supervised = [t for t in labels if t != IGNORE]
        assert m.eos in supervised
        text = tokenizer.decode(supervised, skip_special_tokens=True)
        assert "return x *" in text and '"""' not in text  # loss on bodies only
        saw_fim |= m.middle in ids
    assert saw_fim


def test_fitted_fim_rows_keep_the_middle_and_body_infill_masks_lines(setup: dict) -> None:
    """v2.1's stream: a FIM code row never loses its middle's end (the EOS that teaches the model
    to stop), and an in-body infill task puts loss on the masked lines and their EOS only."""
    from model.train.adapt import IGNORE, MixConfig, MixedStream, fit_fim
    from model.train.tokenizer import load_tokenizer

    assert fit_fim([1, 2, 3], [4, 5], [6, 7, 8], 5) == ([], [6, 7, 8])
    assert fit_fim([1, 2, 3], [4, 5], [6, 7, 8], 4) == ([], [6, 7])
    assert fit_fim([1, 2, 3], [4, 5], [6, 7, 8], 9) == ([1, 2, 3], [6, 7, 8])

    tokenizer = load_tokenizer(setup["new_tok"])
    texts = [(STDLIB / name).read_text() for name in FILES]
    mix = MixConfig(context=64, code_share=1.0, fim_rate=1.0, fim_fit=True)
    fitted = MixedStream(tokenizer, texts, TASKS, mix, seed=3)
    plain = MixedStream(tokenizer, texts, TASKS, MixConfig(context=64, fim_rate=1.0), seed=3)
    m = fitted.markers
    ends = {"fitted": 0, "plain": 0}
    for index in range(60):
        ids, _ = fitted.row(0, index)
        assert len(ids) <= 65 and ids.count(m.middle) == 1
        ends["fitted"] += ids[-1] == m.eos
        ends["plain"] += plain.row(0, index)[0][-1] == m.eos
    # Only a middle longer than the whole window still loses its end.
    assert ends["fitted"] >= 50 and ends["plain"] < ends["fitted"]

    tasks = [
        {
            "prompt": 'def clip(x, lo, hi):\n    """Clip x to [lo, hi]."""\n',
            "completion": "    if x < lo:\n        return lo\n    return min(x, hi)\n",
        }
    ]
    infill = MixedStream(
        tokenizer,
        texts,
        tasks,
        MixConfig(context=256, code_share=0.0, task_fim_rate=1.0, task_infill_share=1.0),
        seed=0,
    )
    body_lines = set(tasks[0]["completion"].splitlines())
    middles = set()
    for index in range(30):
        ids, labels = infill.row(0, index)
        assert ids[0] == m.prefix and m.middle in ids
        first = next(i for i, t in enumerate(labels) if t != IGNORE)
        end = labels.index(m.eos, first)
        middle = tokenizer.decode(labels[first:end], skip_special_tokens=True)
        assert middle and not middle.endswith("\n") and set(middle.split("\n")) <= body_lines
        middles.add(middle)
    assert len(middles) >= 3  # different lines and spans are masked


def test_adapt_trains_resumes_and_exports(setup: dict, tmp_path: Path) -> None:
    from model.train.adapt import MixConfig, run_adapt, transfer_vocabulary
    from model.train.loop import LoopConfig

    init = tmp_path / "init"
    transfer_vocabulary(setup["old"], setup["new_tok"], init)
    mix = MixConfig(context=64)

    def cfg(**kw) -> LoopConfig:
        return LoopConfig(
            run_dir=tmp_path / "run",
            batch_size=2,
            lr=1e-3,
            warmup_steps=2,
            max_steps=6,
            eval_every=3,
            log_every=1,
            bf16="off",
            **kw,
        )

    first = run_adapt(
        init,
        setup["corpus"],
        [setup["tasks"]],
        [1.0],
        cfg(stop_after_steps=3),
        mix,
        export_dir=tmp_path / "out",
        eval_windows=2,
        valid_tasks=4,
    )
    assert first["interrupted"] and first["step"] == 3 and not (tmp_path / "out").exists()
    second = run_adapt(
        init,
        setup["corpus"],
        [setup["tasks"]],
        [1.0],
        cfg(),
        mix,
        export_dir=tmp_path / "out",
        eval_windows=2,
        valid_tasks=4,
    )
    assert second["step"] == 6 and not second["interrupted"]
    evals = [h for h in second["history"] if "task_loss" in h]
    assert evals and all(h["val_bpb"] > 0 for h in evals)
    assert (tmp_path / "out" / "tokenizer.json").exists()


def test_bits_per_byte_compares_models_with_different_tokenizers(setup: dict, capsys) -> None:
    from server.cli import main

    init = setup["root"] / "init"
    if not (init / "config.json").exists():
        from model.train.adapt import transfer_vocabulary

        transfer_vocabulary(setup["old"], setup["new_tok"], init)
    out = setup["root"] / "bpb.json"
    args = ["train", "bpb", str(setup["old"]), str(init), "--corpus", str(setup["corpus"])]
    assert main([*args, "--context", "64", "--max-windows", "4", "--json", str(out)]) == 0
    old, new = json.loads(out.read_text())
    # Same bytes, different tokenizers: token counts differ, bits per byte stay comparable.
    assert old["tokens_per_byte"] != new["tokens_per_byte"]
    assert 0 < old["bits_per_byte"] < 20 and 0 < new["bits_per_byte"] < 20
    missing = ["train", "bpb", str(setup["root"] / "nope"), "--corpus", str(setup["corpus"])]
    assert main(missing) != 0
    assert "no model at" in capsys.readouterr().err
