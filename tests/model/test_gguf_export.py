"""``docomplete train export-gguf``: the file read back with ``gguf.GGUFReader`` (no llama.cpp)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model.cli_support import CommandError
from model.train.gguf_export import export_gguf, permute_rotary, unpermute_rotary
from server.cli import main
from tests.fixtures.gguf_model import SPECIALS, build_llama3_tiny_model

gguf = pytest.importorskip("gguf")


@pytest.fixture(scope="module")
def tied_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_llama3_tiny_model(tmp_path_factory.mktemp("tied") / "model", tied=True)


@pytest.fixture(scope="module")
def exported(tied_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    export_gguf(tied_model, out)
    return gguf.GGUFReader(str(out))


def _field(reader: Any, key: str) -> Any:
    return reader.fields[key].contents()


def _hf_state(model_dir: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(model_dir / "model.safetensors"))


def test_metadata_describes_the_llama(exported: Any, tied_model: Path) -> None:
    config = json.loads((tied_model / "config.json").read_text())
    assert _field(exported, "general.architecture") == "llama"
    assert _field(exported, "llama.context_length") == config["max_position_embeddings"]
    assert _field(exported, "llama.embedding_length") == config["hidden_size"]
    assert _field(exported, "llama.block_count") == config["num_hidden_layers"]
    assert _field(exported, "llama.feed_forward_length") == config["intermediate_size"]
    assert _field(exported, "llama.attention.head_count") == 4
    assert _field(exported, "llama.attention.head_count_kv") == 2
    assert _field(exported, "llama.rope.dimension_count") == 16
    assert _field(exported, "llama.rope.freq_base") == pytest.approx(10000.0)
    assert _field(exported, "llama.attention.layer_norm_rms_epsilon") == pytest.approx(1e-5)


def test_vocabulary_merges_and_special_ids_match_the_tokenizer(
    exported: Any, tied_model: Path
) -> None:
    spec = json.loads((tied_model / "tokenizer.json").read_text())
    by_id = {i: t for t, i in spec["model"]["vocab"].items()}
    by_id |= {t["id"]: t["content"] for t in spec["added_tokens"]}
    tokens = _field(exported, "tokenizer.ggml.tokens")
    assert tokens == [by_id[i] for i in range(len(by_id))]
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    assert _field(exported, "tokenizer.ggml.merges") == merges
    assert _field(exported, "tokenizer.ggml.model") == "gpt2"
    assert _field(exported, "tokenizer.ggml.pre") == "llama-bpe"
    assert _field(exported, "tokenizer.ggml.add_bos_token") is False
    types = _field(exported, "tokenizer.ggml.token_type")
    special_ids = [tokens.index(s) for s in SPECIALS]
    assert [types[i] for i in special_ids] == [gguf.TokenType.CONTROL] * len(SPECIALS)
    assert {types[i] for i in range(len(tokens)) if i not in special_ids} == {gguf.TokenType.NORMAL}
    assert _field(exported, "tokenizer.ggml.eos_token_id") == tokens.index("<|endoftext|>")
    assert _field(exported, "tokenizer.ggml.bos_token_id") == tokens.index("<|bos|>")
    assert _field(exported, "tokenizer.ggml.padding_token_id") == tokens.index("<|pad|>")
    assert _field(exported, "tokenizer.ggml.fim_pre_token_id") == tokens.index("<|fim_prefix|>")
    assert _field(exported, "tokenizer.ggml.fim_mid_token_id") == tokens.index("<|fim_middle|>")
    assert _field(exported, "tokenizer.ggml.fim_suf_token_id") == tokens.index("<|fim_suffix|>")


def test_tensors_have_llama_cpp_names_and_tied_output_is_left_out(
    exported: Any, tied_model: Path
) -> None:
    state = _hf_state(tied_model)
    tensors = {t.name: t for t in exported.tensors}
    expected = {"token_embd.weight", "output_norm.weight"}
    for i in range(2):
        expected |= {
            f"blk.{i}.{n}.weight"
            for n in (
                *("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output"),
                *("ffn_norm", "ffn_gate", "ffn_up", "ffn_down"),
            )
        }
    assert set(tensors) == expected  # no output.weight: the embedding is tied
    assert all(t.tensor_type == gguf.GGMLQuantizationType.F32 for t in tensors.values())
    np.testing.assert_array_equal(
        tensors["token_embd.weight"].data, state["model.embed_tokens.weight"]
    )
    np.testing.assert_array_equal(
        tensors["blk.1.ffn_down.weight"].data, state["model.layers.1.mlp.down_proj.weight"]
    )
    # ggml lists dimensions innermost first: (in_features, out_features).
    assert list(tensors["blk.0.attn_k.weight"].shape) == [64, 32]


def test_q_and_k_are_permuted_and_round_trip(exported: Any, tied_model: Path) -> None:
    state = _hf_state(tied_model)
    tensors = {t.name: t for t in exported.tensors}
    for layer in range(2):
        q = state[f"model.layers.{layer}.self_attn.q_proj.weight"]
        k = state[f"model.layers.{layer}.self_attn.k_proj.weight"]
        gguf_q = np.asarray(tensors[f"blk.{layer}.attn_q.weight"].data)
        gguf_k = np.asarray(tensors[f"blk.{layer}.attn_k.weight"].data)
        assert not np.array_equal(gguf_q, q)
        np.testing.assert_array_equal(unpermute_rotary(gguf_q, 4), q)
        np.testing.assert_array_equal(unpermute_rotary(gguf_k, 2), k)


def _rope_rotate_half(x: np.ndarray, pos: int, theta: float = 10000.0) -> np.ndarray:
    """transformers' RoPE on one head: element i pairs with i + d/2."""
    d = x.shape[0]
    freqs = pos * theta ** (-np.arange(0, d, 2) / d)
    cos, sin = np.cos(np.concatenate([freqs, freqs])), np.sin(np.concatenate([freqs, freqs]))
    rotated = np.concatenate([-x[d // 2 :], x[: d // 2]])
    return x * cos + rotated * sin


def _rope_interleaved(x: np.ndarray, pos: int, theta: float = 10000.0) -> np.ndarray:
    """llama.cpp's normal RoPE on one head: element 2i pairs with 2i + 1."""
    d = x.shape[0]
    freqs = pos * theta ** (-np.arange(0, d, 2) / d)
    out = x.copy()
    out[0::2] = x[0::2] * np.cos(freqs) - x[1::2] * np.sin(freqs)
    out[1::2] = x[0::2] * np.sin(freqs) + x[1::2] * np.cos(freqs)
    return out


def test_permuted_weights_give_the_same_attention_scores_under_llama_cpp_rope() -> None:
    rng = np.random.default_rng(0)
    heads, head_dim, hidden = 2, 8, 12
    wq = rng.normal(size=(heads * head_dim, hidden))
    wk = rng.normal(size=(heads * head_dim, hidden))
    x_q, x_k = rng.normal(size=hidden), rng.normal(size=hidden)
    pq, pk = permute_rotary(wq, heads), permute_rotary(wk, heads)
    for h in range(heads):
        rows = slice(h * head_dim, (h + 1) * head_dim)
        hf = _rope_rotate_half(wq[rows] @ x_q, 5) @ _rope_rotate_half(wk[rows] @ x_k, 2)
        cpp = _rope_interleaved(pq[rows] @ x_q, 5) @ _rope_interleaved(pk[rows] @ x_k, 2)
        assert cpp == pytest.approx(hf, rel=1e-9)


def test_untied_model_keeps_its_output_and_f16_keeps_norms_f32(tmp_path: Path) -> None:
    model = build_llama3_tiny_model(tmp_path / "untied", tied=False, extra_vocab_rows=3)
    summary = export_gguf(model, tmp_path / "untied.gguf", out_type="f16")
    reader = gguf.GGUFReader(str(tmp_path / "untied.gguf"))
    tensors = {t.name: t for t in reader.tensors}
    assert "output.weight" in tensors
    assert tensors["output.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    assert tensors["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    tokens = _field(reader, "tokenizer.ggml.tokens")
    assert len(tokens) == summary["vocab_size"] == len(tensors["token_embd.weight"].data)
    assert tokens[-1].startswith("[PAD")
    assert _field(reader, "tokenizer.ggml.token_type")[-1] == gguf.TokenType.UNUSED


def test_bf16_export(tied_model: Path, tmp_path: Path) -> None:
    export_gguf(tied_model, tmp_path / "bf16.gguf", out_type="bf16")
    reader = gguf.GGUFReader(str(tmp_path / "bf16.gguf"))
    tensors = {t.name: t for t in reader.tensors}
    assert tensors["blk.0.ffn_up.weight"].tensor_type == gguf.GGMLQuantizationType.BF16
    assert list(tensors["blk.0.ffn_up.weight"].shape) == [64, 128]


def test_a_tokenizer_without_a_llama_cpp_preset_is_refused(
    tied_model: Path, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tied_model, model)
    spec = json.loads((model / "tokenizer.json").read_text())
    spec["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = r"\n| {2,}|\t+"
    (model / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(CommandError, match=r"not Llama 3's regex.*llama-bpe"):
        export_gguf(model, tmp_path / "out.gguf")
    assert not (tmp_path / "out.gguf").exists()

    spec = json.loads((tied_model / "tokenizer.json").read_text())
    spec["model"]["ignore_merges"] = False
    (model / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(CommandError, match="ignore_merges"):
        export_gguf(model, tmp_path / "out.gguf")


def test_a_model_that_is_not_a_llama_is_refused(tied_model: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(tied_model, model)
    config = json.loads((model / "config.json").read_text())
    config["model_type"] = "gpt2"
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(CommandError, match="only LlamaForCausalLM"):
        export_gguf(model, tmp_path / "out.gguf")


def test_cli_writes_the_file_and_prints_a_summary(
    tied_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli.gguf"
    assert main(["train", "export-gguf", str(tied_model), str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["tokenizer_pre"] == "llama-bpe" and out.stat().st_size == summary["bytes"]
    assert main(["train", "export-gguf", str(tmp_path / "nowhere"), str(out)]) == 2
    assert "model not found" in capsys.readouterr().err
