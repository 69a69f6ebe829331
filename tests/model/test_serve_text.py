"""Token text for the wire: pieces that join to the text, and what a stream may send so far."""

from __future__ import annotations

import pytest

from model.engine import Engine
from model.serve_text import (
    StreamedChoice,
    safe_text_length,
    token_labeller,
    token_pieces,
)

SPLIT_TEXT = "café 🙂 naïve = 'ü'\n"


def test_characters_split_over_byte_tokens_go_to_the_token_that_completes_them(
    engine: Engine,
) -> None:
    ids = engine.encode(SPLIT_TEXT)
    solo = [engine.decode([t]) for t in ids]
    assert any("\ufffd" in s for s in solo)  # decoding one token at a time splits characters
    pieces = token_pieces(engine.decode, ids)
    assert len(pieces) == len(ids)
    assert "".join(pieces) == SPLIT_TEXT
    assert "🙂" in pieces  # four byte tokens: three empty pieces, then the whole emoji
    assert not any("\ufffd" in p for p in pieces)


def test_bytes_that_never_form_a_character_keep_their_replacement_character(
    engine: Engine,
) -> None:
    lone = engine.encode("é")[1]  # a continuation byte on its own is invalid UTF-8
    ids = [*engine.encode("a"), lone, *engine.encode("b"), lone]
    text = engine.decode(ids)
    assert text == "a\ufffdb\ufffd"
    assert token_pieces(engine.decode, ids) == ["a", "\ufffd", "b", "\ufffd"]


def test_a_stop_cut_inside_a_character_leaves_no_replacement_character(engine: Engine) -> None:
    ids = engine.encode("aé")
    # The engine kept 'a' and the first byte of 'é'; the stop string started at the 'é'.
    assert token_pieces(engine.decode, ids[:-1], text="a") == ["a", ""]
    assert token_pieces(engine.decode, ids[:-1]) == ["a", "\ufffd"]


@pytest.mark.parametrize(
    ("text", "stops", "safe"),
    [
        ("    return x", [], 12),
        ("    return x", ["tur"], 6),  # up to the stop
        ("    retu", ["tur"], 6),  # "tu" may become "tur": hold it back
        ("    ret", ["tur", "et\n"], 5),  # "t" may begin "tur", "et" may begin "et\n"
        ("abc", ["xyz"], 3),
        ("ab\n", ["\n\n", "b\nc"], 1),
    ],
)
def test_safe_text_length_holds_back_what_may_still_become_a_stop(
    text: str, stops: list[str], safe: int
) -> None:
    assert safe_text_length(text, stops) == safe


def test_streamed_choice_sends_whole_tokens_and_never_the_stop(engine: Engine) -> None:
    text = "    return a + b\n"
    ids = engine.encode(text)
    stream = StreamedChoice(engine.decode, ["tur"])
    sent = ""
    for token_id in ids:
        release = stream.push(token_id, -1.0)
        if release is not None:
            assert "".join(release.tokens) == release.text
            sent += release.text
    cut = text.find("tur")
    assert sent and text[:cut].startswith(sent)
    # The engine keeps the tokens whose text fits before the stop, and cuts the text there.
    kept = max(k for k in range(len(ids) + 1) if len(engine.decode(ids[:k])) <= cut)
    final = stream.finish(text[:cut], ids[:kept], [-1.0] * kept)
    assert sent + final.text == "    re"
    assert stream.sent_tokens == kept


def test_labels_name_special_tokens_and_bytes(engine: Engine) -> None:
    label = token_labeller(engine.tokenizer)
    eos = engine.tokenizer.eos_token_id
    assert label(eos) == engine.tokenizer.eos_token
    first_byte_of_e_acute = engine.encode("é")[0]
    assert label(first_byte_of_e_acute) == "bytes:\\xc3"
    assert label(engine.encode("x")[0]) == "bytes:x"
