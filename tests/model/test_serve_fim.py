"""``suffix`` on the model server: a FIM prompt built from the model's tokens, or a clear 400."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from model.engine import Engine
from model.fim import FIM_TEMPLATES, build_fim_prompt
from tests.fixtures.tiny_model import build_tiny_model
from tests.model.conftest import ServerThread

PREFIX = "def add(a: int, b: int) -> int:\n    return "
SUFFIX = "\n\n\nprint(add(1, 2))\n"
STARCODER = FIM_TEMPLATES["starcoder"]


@pytest.fixture(scope="module")
def fim_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    path = build_tiny_model(
        tmp_path_factory.mktemp("tiny-fim-model"), extra_special_tokens=STARCODER.tokens
    )
    return Engine.load(path)


@pytest.fixture(scope="module")
def fim_server(fim_engine: Engine) -> Iterator[ServerThread]:
    from model.serve import create_app

    with ServerThread(create_app(fim_engine)) as server:
        yield server


def _complete(server: ServerThread, body: dict) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/completions", json=body, timeout=60)


def test_suffix_fills_in_the_middle_with_the_models_fim_tokens(
    fim_server: ServerThread, fim_engine: Engine
) -> None:
    models = httpx.get(f"{fim_server.url}/v1/models").json()
    assert models["data"][0]["fim_template"] == "starcoder"
    greedy = {"max_tokens": 10, "temperature": 0}
    answer = _complete(fim_server, {**greedy, "prompt": PREFIX, "suffix": SUFFIX})
    assert answer.status_code == 200, answer.text
    fim_prompt = build_fim_prompt(PREFIX, SUFFIX, STARCODER)
    # Each marker is one token: the prompt costs the prefix, the suffix and three markers.
    expected_tokens = fim_engine.count_tokens(PREFIX) + fim_engine.count_tokens(SUFFIX) + 3
    assert answer.json()["usage"]["prompt_tokens"] == expected_tokens
    # The server completes exactly the prompt a client would have built itself.
    by_hand = _complete(fim_server, {**greedy, "prompt": fim_prompt})
    assert answer.json()["choices"][0]["text"] == by_hand.json()["choices"][0]["text"]
    plain = _complete(fim_server, {**greedy, "prompt": PREFIX})
    assert plain.json()["usage"]["prompt_tokens"] == fim_engine.count_tokens(PREFIX)


def test_a_model_declining_auto_fim_says_so_and_auto_then_prompts_left_to_right(
    fim_engine: Engine,
) -> None:
    """The bundled model's docomplete.json declines `fimTemplate: auto`; served over HTTP, an
    editor asking the server must get the same answer as with the embedded model, while a
    client that names the template (or sends ``suffix``) still gets FIM."""
    from model.fim import resolve_fim_template
    from model.serve import create_app

    reason = "fills in worse than it completes left to right"
    with ServerThread(create_app(fim_engine, fim_declined=reason)) as server:
        [entry] = httpx.get(f"{server.url}/v1/models").json()["data"]
        assert (entry["fim_template"], entry["fim_auto"]) == ("starcoder", False)
        assert entry["fim_auto_reason"] == reason
        assert resolve_fim_template("auto", (server.url,), None) is None
        named = resolve_fim_template("starcoder", (server.url,), None)
        assert named is not None and named.name == "starcoder"
        answer = _complete(server, {"prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 2})
        assert answer.status_code == 200, answer.text


def test_echo_with_a_suffix_repeats_the_prompt_as_sent(fim_server: ServerThread) -> None:
    body = {"prompt": [PREFIX, "x = "], "suffix": SUFFIX, "max_tokens": 4, "echo": True}
    choices = _complete(fim_server, body).json()["choices"]
    assert choices[0]["text"].startswith(PREFIX) and "<fim_" not in choices[0]["text"]
    assert choices[1]["text"].startswith("x = ")


def test_suffix_on_a_model_without_fim_tokens_is_a_400_that_says_so(
    model_server: ServerThread,
) -> None:
    models = httpx.get(f"{model_server.url}/v1/models").json()
    assert models["data"][0]["fim_template"] is None
    answer = _complete(model_server, {"prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 4})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == "suffix"
    assert "fill-in-the-middle" in error["message"] and "FIM tokens" in error["message"]
    # An empty suffix asks for nothing a plain completion does not give.
    empty = _complete(model_server, {"prompt": PREFIX, "suffix": "", "max_tokens": 4})
    assert empty.status_code == 200
    wrong_type = _complete(model_server, {"prompt": PREFIX, "suffix": 3})
    assert wrong_type.status_code == 400 and wrong_type.json()["error"]["param"] == "suffix"
