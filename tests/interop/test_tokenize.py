"""The exported GGUF tokenises exactly as transformers does (llama-cpp-python and llama-server)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from model.sampling_bench import humaneval_prompts

#: Texts beyond HumanEval where pre-tokenizers tend to differ: runs of spaces before a quote,
#: tabs, CRLF, blank lines with trailing spaces, digit runs, contractions, non-ASCII, emoji.
TRICKY = [
    '    """Return x.\n\n    >>> f(1)\n    2\n    """\n',
    "\tif x:\n\t\treturn  y\r\n",
    "a = 1   \n   \n\n\n        b = 12345678\n",
    "It's we'll THEY'RE don't I'M",
    "naïve café — ünïcödé 日本語 ✓ 🙂\n",
    "x=[1,2,3];y={'k':(4,5)}#c\n",
    "                                        deep = True\n",
]


def _hf_ids(model_dir: Path, texts: list[str]) -> list[list[int]]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    # As the engine encodes a prompt (model.engine.core: add_special_tokens=True).
    return [list(tokenizer(text, add_special_tokens=True)["input_ids"]) for text in texts]


def _llama_cpp_ids(build: Any, gguf: Path, texts: list[str], special: bool) -> dict[str, Any]:
    script = Path(__file__).with_name("llama_tokenize.py")
    done = subprocess.run(
        [str(build.python), str(script)],
        input=json.dumps({"gguf": str(gguf), "texts": texts, "special": special}),
        capture_output=True,
        text=True,
        env=build.python_env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def _first_difference(ours: list[int], theirs: list[int]) -> str:
    at = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b), None)
    at = min(len(ours), len(theirs)) if at is None else at
    return (
        f"first difference at token {at}: transformers {ours[at : at + 5]} vs {theirs[at : at + 5]}"
    )


def test_every_humaneval_prompt_tokenises_as_in_transformers(
    model_dir: Path, gguf_file: Path, llama_build: Any
) -> None:
    prompts = humaneval_prompts(164)
    assert len(prompts) == 164
    texts = prompts + TRICKY
    expected = _hf_ids(model_dir, texts)
    got = _llama_cpp_ids(llama_build, gguf_file, texts, special=False)
    mismatched = [
        f"text {i}: {_first_difference(e, g)}"
        for i, (e, g) in enumerate(zip(expected, got["ids"], strict=True))
        if e != g
    ]
    assert mismatched == [], f"{len(mismatched)} of {len(texts)} differ: {mismatched[:5]}"
    # (Not compared: llama-cpp-python's detokenize reads each token into a 32-byte buffer, so
    # tokens longer than that — runs of 33+ spaces — come back wrong. llama-server is right.)


def test_llama_server_tokenizes_and_detokenizes_alike(model_dir: Path, llama_server: str) -> None:
    texts = humaneval_prompts(164) + TRICKY
    expected = _hf_ids(model_dir, texts)
    with httpx.Client(base_url=llama_server, timeout=60) as client:
        for text, ids in zip(texts, expected, strict=True):
            answer = client.post("/tokenize", json={"content": text, "add_special": True})
            assert answer.status_code == 200
            assert answer.json()["tokens"] == ids
            back = client.post("/detokenize", json={"tokens": ids})
            assert back.json()["content"] == text


def test_fim_and_special_tokens_are_single_control_tokens(
    model_dir: Path, gguf_file: Path, llama_build: Any
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    specials = [t for t in tokenizer.all_special_tokens if t.startswith("<|")]
    if not any("fim" in t for t in specials):
        pytest.skip("this model's tokenizer has no FIM tokens")
    text = "".join(f"{t}x = 1\n" for t in specials)
    got = _llama_cpp_ids(llama_build, gguf_file, [text], special=True)
    assert got["ids"] == _hf_ids(model_dir, [text])
