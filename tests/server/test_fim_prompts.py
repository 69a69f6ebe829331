"""Fill-in-the-middle prompts per model family, from tiny tokenizers built here that carry each
family's special tokens (no downloads), and the ``fimTemplate`` setting end to end."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from model.fim import FIM_TEMPLATES, tokenizer_vocabulary
from model.protocol import estimate_tokens
from server.config import ServerConfig, parse_config
from server.context import find_completion_site
from server.fim_prompt import build_site_fim_prompt, resolve_fim_template
from server.pipeline import CompletionPipeline
from tests.fixtures.scripted_backend import Reply, ScriptedBackend
from tests.fixtures.tiny_model import build_tiny_tokenizer

SOURCE = (
    "import math\n\n\n"
    "def area(r):\n"
    '    """Disc area."""\n'
    "    \n"
    "    return result\n\n\n"
    "print(area(2))\n"
)
CURSOR = (5, 4)
PREFIX = 'import math\n\n\ndef area(r):\n    """Disc area."""\n'
SUFFIX = "\n    return result\n\n\nprint(area(2))\n"

GOLDEN = {
    "starcoder": f"<fim_prefix>{PREFIX}<fim_suffix>{SUFFIX}<fim_middle>",
    "qwen": f"<|fim_prefix|>{PREFIX}<|fim_suffix|>{SUFFIX}<|fim_middle|>",
    "codegemma": f"<|fim_prefix|>{PREFIX}<|fim_suffix|>{SUFFIX}<|fim_middle|>",
    "santacoder": f"<fim-prefix>{PREFIX}<fim-suffix>{SUFFIX}<fim-middle>",
    "deepseek": f"<｜fim▁begin｜>{PREFIX}<｜fim▁hole｜>{SUFFIX}<｜fim▁end｜>",
    "codellama": f"<PRE> {PREFIX} <SUF>{SUFFIX} <MID>",
    "codestral": f"[SUFFIX]{SUFFIX}[PREFIX]{PREFIX}",
}
STOPS = {
    "qwen": "<|endoftext|>",
    "codegemma": "<|file_separator|>",
    "codellama": "<EOT>",
    "deepseek": "<｜end▁of▁sentence｜>",
    "codestral": "</s>",
}


def site():
    found = find_completion_site(SOURCE, *CURSOR)
    assert found is not None
    return found


@pytest.fixture(scope="module")
def tokenizer_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny tokenizer per family, carrying that family's special tokens."""
    dirs = {}
    for name, template in FIM_TEMPLATES.items():
        path = tmp_path_factory.mktemp(f"tokenizer-{name}")
        build_tiny_tokenizer(path, extra_special_tokens=template.tokens)
        dirs[name] = path
    return dirs


@pytest.mark.parametrize("family", sorted(FIM_TEMPLATES))
def test_auto_reads_the_family_from_the_tokenizer_and_lays_out_its_prompt(
    family: str, tokenizer_dirs: dict[str, Path]
):
    from transformers import AutoTokenizer

    directory = tokenizer_dirs[family]
    assert FIM_TEMPLATES[family].prefix_token in tokenizer_vocabulary(directory)
    template = resolve_fim_template("auto", ("embedded",), str(directory))
    assert template is not None and template.name == family
    prompt = build_site_fim_prompt(site(), template, 768, estimate_tokens)
    assert prompt == GOLDEN[family]
    if family in STOPS:
        assert STOPS[family] in template.stop_sequences
    # Each marker is one token of that tokenizer: the model sees its FIM markers, not text.
    tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    for marker in template.markers:
        if marker in prompt:
            assert tokenizer.convert_tokens_to_ids(marker) in ids


def test_a_model_without_fim_tokens_keeps_the_left_to_right_prompt(tmp_path: Path):
    build_tiny_tokenizer(tmp_path)
    assert resolve_fim_template("auto", ("embedded",), str(tmp_path)) is None
    # The bundled v2 checkpoint has FIM tokens but declines `auto` (its infilling is weaker than
    # its left-to-right completion); naming the family still uses them.
    assert resolve_fim_template("auto", ("embedded",), None) is None
    named = resolve_fim_template("qwen", ("embedded",), None)
    assert named is not None and named.name == "qwen"


def test_a_model_can_decline_auto_fim_in_its_docomplete_json(tmp_path: Path):
    build_tiny_tokenizer(tmp_path, extra_special_tokens=FIM_TEMPLATES["qwen"].tokens)
    auto = resolve_fim_template("auto", ("embedded",), str(tmp_path))
    assert auto is not None and auto.name == "qwen"
    (tmp_path / "docomplete.json").write_text('{"fim_auto": false, "fim_auto_reason": "weak"}')
    assert resolve_fim_template("auto", ("embedded",), str(tmp_path)) is None
    named = resolve_fim_template("qwen", ("embedded",), str(tmp_path))
    assert named is not None and named.name == "qwen"


def test_setting_names_a_family_or_gives_a_custom_template():
    assert resolve_fim_template("none", ("embedded",), None) is None
    named = resolve_fim_template("StarCoder2", ("embedded",), None)
    assert named is not None and named.name == "starcoder"
    custom = resolve_fim_template("<s>{prefix}<hole>{suffix}<fill>", ("embedded",), None)
    assert custom is not None
    prompt = build_site_fim_prompt(site(), custom, 768, estimate_tokens)
    assert prompt == f"<s>{PREFIX}<hole>{SUFFIX}<fill>"


def test_bad_settings_are_reported_and_fall_back():
    config, problems = parse_config({"fimTemplate": "gpt-17"})
    assert config.fim_template == "auto" and "fimTemplate" in problems[0]
    config, problems = parse_config({"fimTemplate": "<pre>{prefix}<mid>"})
    assert config.fim_template == "auto" and "{suffix}" in problems[0]
    config, problems = parse_config({"fimTemplate": "qwen3-coder"})
    assert config.fim_template == "qwen3-coder" and not problems


def test_suffix_gets_a_quarter_of_the_budget_cut_at_line_boundaries():
    long_tail = "".join(f"print('line {i}')\n" for i in range(400))
    text = SOURCE + long_tail
    found = find_completion_site(text, *CURSOR)
    assert found is not None
    template = FIM_TEMPLATES["starcoder"]
    budget = 400
    prompt = build_site_fim_prompt(found, template, budget, estimate_tokens)
    suffix = prompt.split("<fim_suffix>", 1)[1].removesuffix("<fim_middle>")
    assert suffix.startswith(SUFFIX)
    assert estimate_tokens(suffix) <= budget * 0.25
    assert suffix.endswith("')\n")  # whole lines only
    prefix = prompt.removeprefix("<fim_prefix>").split("<fim_suffix>", 1)[0]
    assert prefix == PREFIX  # it fits: nothing cut from the top


def test_server_url_model_id_picks_the_template_and_the_request_carries_it():
    reply = Reply(["    result = math.pi * r * r\n"], [-0.2])
    with ScriptedBackend([reply], model_id="Qwen/Qwen2.5-Coder-1.5B") as backend:
        pipeline = CompletionPipeline()
        config = ServerConfig(backend=(backend.url,), doctest_filter=False)

        async def run():
            outcome = await pipeline.complete(site(), config, request_id="r1")
            await pipeline.aclose()
            return outcome

        outcome = asyncio.run(run())
        sent = backend.requests[0]
    assert sent["prompt"][0] == GOLDEN["qwen"]
    assert "<|endoftext|>" in sent["stop"] and "\ndef " in sent["stop"]
    assert [c.continuation for c in outcome.ranked] == ["    result = math.pi * r * r"]


def test_other_model_ids_are_matched_or_left_left_to_right():
    with ScriptedBackend([Reply(["    pass\n"], [-0.1])], model_id="tiny") as backend:
        assert resolve_fim_template("auto", (backend.url,), None) is None
    with ScriptedBackend([Reply(["    pass\n"], [-0.1])], model_id="codellama-7b") as backend:
        template = resolve_fim_template("auto", (backend.url,), None)
    assert template is not None and template.name == "codellama"


def test_a_server_that_does_not_answer_is_asked_again_later():
    import socket

    from server.fim_prompt import FimLookupError

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FimLookupError):
        resolve_fim_template("auto", (f"http://127.0.0.1:{port}",), None)
    # An explicit family needs no server.
    assert resolve_fim_template("codestral", (f"http://127.0.0.1:{port}",), None) is not None
