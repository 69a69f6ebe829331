"""Token ids to wire text for the model server: token strings that join up, safe stream prefixes.

Pure Python over the engine's ``decode`` callable (no torch here), so the rules are easy to test:

* ``logprobs.tokens`` must join back to the choice's text. Decoding one byte-level token alone
  gives U+FFFD when it holds part of a character (an ``é`` or an emoji split over tokens), so
  tokens are decoded incrementally: a token that leaves a character unfinished gets ``""`` and
  the token that completes it carries the whole character (as vLLM's detokenizer does). Bytes
  that never form a character keep their U+FFFD, as in the text.
* A streamed choice may only send text that can no longer change: nothing from the first stop
  string on, and no tail that could still grow into a stop string (a stop may begin in the
  middle of a token). Streamed text then equals the non-streamed text for the same seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Decode = Callable[[Sequence[int]], str]
#: A token's label where its text says nothing: special tokens (``decode`` skips them) and
#: lone bytes of a character; None where the tokenizer cannot tell.
TokenLabel = Callable[[int], str | None]
#: (token id, raw log-prob) pairs of one position's most likely tokens, most likely first.
TopAlternatives = tuple[tuple[int, float], ...]

_UNFINISHED = "\ufffd"  # what a decoder gives for the bytes of a character not yet complete


class IncrementalDetokenizer:
    """Gives each token the text it adds; the pieces join to ``decode(ids)``.

    Each piece is decoded together with the previous token(s) and the context's text cut off,
    so tokenizers that drop a leading space at the start of a decode still join up.
    ``label`` names the top alternatives whose text is empty or an unfinished character.
    """

    def __init__(self, decode: Decode, label: TokenLabel | None = None) -> None:
        self._decode = decode
        self._label = label
        self.ids: list[int] = []
        self.pieces: list[str] = []  # one per token whose text is final
        #: Per token: the (start, end) of its decoding context in ``ids``; tokens from ``end``
        #: to the token itself are bytes of an unfinished character.
        self.contexts: list[tuple[int, int]] = []
        self._prefix = 0  # where the next decoding context starts
        self._read = 0  # tokens before this have final pieces

    def push(self, token_id: int) -> list[str]:
        """Add a token; returns the pieces it made final (none while a character is unfinished)."""
        self.contexts.append((self._prefix, self._read))
        self.ids.append(token_id)
        text = self._decode(self.ids[self._prefix :])
        if text.endswith(_UNFINISHED):
            return []
        return self._settle(text)

    def flush(self, *, keep_unfinished: bool = True) -> list[str]:
        """Final pieces for tokens still waiting at the end: their U+FFFD text, or ``""``."""
        if self._read == len(self.ids):
            return []
        if keep_unfinished:
            return self._settle(self._decode(self.ids[self._prefix :]))
        new = [""] * (len(self.ids) - self._read)
        self.pieces += new
        self._read = len(self.ids)
        return new

    def unfinished_text(self) -> str:
        """The text (U+FFFD included) of the tokens still waiting for their character's end."""
        if self._read == len(self.ids):
            return ""
        context = self._decode(self.ids[self._prefix : self._read])
        return self._decode(self.ids[self._prefix :])[len(context) :]

    def _settle(self, text: str) -> list[str]:
        """Share ``text`` (the decoded waiting tokens, context first) among those tokens: each
        gets what its own prefix decoded to that the final text kept (an invalid byte's U+FFFD
        stays with its token), the last one the rest."""
        done = len(self._decode(self.ids[self._prefix : self._read]))
        new = []
        for end in range(self._read + 1, len(self.ids)):
            partial = self._decode(self.ids[self._prefix : end])
            kept = max(done, _common_prefix_length(partial, text))
            new.append(text[done:kept])
            done = kept
        new.append(text[done:])
        self.pieces += new
        self._prefix, self._read = self._read, len(self.ids)
        return new

    def alternative_piece(self, position: int, token_id: int) -> str:
        """The text ``token_id`` would have added in place of the token at ``position``.

        Where that text is empty or an unfinished character, the token's label stands in (a
        special token's name, ``bytes:\\xe2\\x82`` for bytes), so alternatives stay distinct.
        """
        start, end = self.contexts[position]
        context = self._decode(self.ids[start:end])
        text = self._decode([*self.ids[start:position], token_id])[len(context) :]
        if (not text or text.endswith(_UNFINISHED)) and self._label is not None:
            return self._label(token_id) or text
        return text


def _byte_level_alphabet() -> dict[str, int]:
    """The printable character that byte-level BPE vocabularies (GPT-2 and its heirs) use for
    each byte: printable Latin-1 bytes stand for themselves, the rest map to 256 and up."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    others = [b for b in range(256) if b not in printable]
    alphabet = {chr(b): b for b in printable}
    alphabet.update({chr(256 + i): b for i, b in enumerate(others)})
    return alphabet


def token_labeller(tokenizer: Any) -> TokenLabel:
    """Labels for a Hugging Face tokenizer: special tokens by name; byte-level BPE tokens and
    SentencePiece byte tokens (``<0xE2>``) as ``bytes:`` plus their escaped bytes."""
    names = dict(
        zip(
            getattr(tokenizer, "all_special_ids", []),
            getattr(tokenizer, "all_special_tokens", []),
            strict=False,
        )
    )
    alphabet = _byte_level_alphabet()

    def label(token_id: int) -> str | None:
        if token_id in names:
            return str(names[token_id])
        piece = tokenizer.convert_ids_to_tokens(token_id)
        if not isinstance(piece, str):
            return None
        if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
            raw = bytes([int(piece[3:5], 16)])
        elif piece and all(c in alphabet for c in piece):
            raw = bytes(alphabet[c] for c in piece)
        else:
            return None
        return "bytes:" + "".join(chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}" for b in raw)

    return label


def _common_prefix_length(a: str, b: str) -> int:
    size = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        size += 1
    return size


def token_pieces(decode: Decode, ids: Sequence[int], text: str | None = None) -> list[str]:
    """Each token's text, joining to ``decode(ids)``.

    ``text`` is the choice's final text when a stop string may have cut it: bytes of a
    character that the cut left unfinished then get ``""`` instead of U+FFFD.
    """
    return detokenize(decode, ids, text).pieces


def detokenize(
    decode: Decode,
    ids: Sequence[int],
    text: str | None = None,
    label: TokenLabel | None = None,
) -> IncrementalDetokenizer:
    """An ``IncrementalDetokenizer`` fed all of ``ids`` and flushed (see ``token_pieces``)."""
    detokenizer = IncrementalDetokenizer(decode, label)
    for token_id in ids:
        detokenizer.push(token_id)
    joined = "".join(detokenizer.pieces) + detokenizer.unfinished_text()
    detokenizer.flush(keep_unfinished=text is None or text.startswith(joined))
    return detokenizer


def top_logprob_dicts(
    detokenizer: IncrementalDetokenizer,
    tops: Sequence[TopAlternatives],
    logprobs: Sequence[float],
    start: int,
    end: int,
) -> list[dict[str, float]]:
    """OpenAI's ``top_logprobs`` for positions ``start..end``: alternative text -> log-prob.

    The sampled token is always present under its own piece (with its own log-prob), so a
    client can look each entry of ``tokens`` up in its position's dict.
    """
    dicts = []
    for position in range(start, end):
        entry: dict[str, float] = {}
        for token_id, logprob in tops[position]:
            entry.setdefault(detokenizer.alternative_piece(position, token_id), logprob)
        entry[detokenizer.pieces[position]] = logprobs[position]
        dicts.append(entry)
    return dicts


def safe_text_length(text: str, stops: Sequence[str], start: int = 0) -> int:
    """How much of ``text`` a stream may send: up to the first stop string and short of any
    tail that is the beginning of one. Nothing before ``start`` is searched (already sent)."""
    limit = len(text)
    for stop in stops:
        found = text.find(stop, start)
        if found >= 0:
            limit = min(limit, found)
        for size in range(min(len(stop) - 1, len(text) - start), 0, -1):
            if text.endswith(stop[:size]):
                limit = min(limit, len(text) - size)
                break
    return limit


@dataclass
class Release:
    """A piece of a streamed choice that is safe to send, with its tokens' log-probs."""

    text: str
    tokens: list[str] = field(default_factory=list)
    token_logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[dict[str, float]] | None = None
    text_offset: list[int] = field(default_factory=list)


class StreamedChoice:
    """One choice of a streamed completion: takes tokens as they are sampled and releases text
    (whole tokens) once no stop string can still change it.

    The engine keeps the longest run of tokens whose decoded text fits before the stop string,
    so a run is released only when its decoded length is within the safe length, and only
    whole groups of tokens that make up a character: the pieces sent are then exactly those of
    the non-streamed choice.
    """

    def __init__(
        self,
        decode: Decode,
        stops: Sequence[str],
        offset: int = 0,
        label: TokenLabel | None = None,
    ) -> None:
        self._decode = decode
        self._stops = stops
        self._offset = offset  # where the generated text starts in the choice (echo)
        self._label = label
        self._detokenizer = IncrementalDetokenizer(decode, label)
        self._text = ""  # text of the tokens whose pieces are final
        self._ends: list[int] = []  # end of each such token in ``_text``
        self._boundaries: list[int] = []  # token counts at which every character is complete
        self._logprobs: list[float] = []
        self._tops: list[TopAlternatives] = []
        self.sent_tokens = 0
        self.sent_chars = 0

    def push(self, token_id: int, logprob: float, top: TopAlternatives = ()) -> Release | None:
        """Take the next sampled token; returns what became safe to send, if anything."""
        self._logprobs.append(logprob)
        self._tops.append(top)
        pieces = self._detokenizer.push(token_id)
        if not pieces:
            return None
        for piece in pieces:
            self._text += piece
            self._ends.append(len(self._text))
        self._boundaries.append(len(self._ends))
        limit = safe_text_length(self._text, self._stops, self.sent_chars)
        for count in reversed(self._boundaries):
            if count <= self.sent_tokens:
                return None
            ids = self._detokenizer.ids[:count]
            if self._ends[count - 1] <= limit and len(self._decode(ids)) <= limit:
                return self._release(
                    self._detokenizer,
                    self._text,
                    self._logprobs,
                    self._tops,
                    count,
                    self._ends[count - 1],
                )
        return None

    def finish(
        self, text: str, token_ids: Sequence[int], token_logprobs: Sequence[float]
    ) -> Release:
        """The rest of the choice, from the engine's final text and kept tokens."""
        detokenizer = detokenize(self._decode, token_ids, text, self._label)
        tops = self._tops[: len(token_ids)]
        return self._release(detokenizer, text, token_logprobs, tops, len(token_ids), len(text))

    def _release(
        self,
        detokenizer: IncrementalDetokenizer,
        text: str,
        logprobs: Sequence[float],
        tops: Sequence[TopAlternatives],
        count: int,
        end: int,
    ) -> Release:
        start = self.sent_tokens
        pieces = detokenizer.pieces[start:count]
        offsets = []
        position = self._offset + self.sent_chars
        for piece in pieces:
            offsets.append(position)
            position += len(piece)
        release = Release(
            text=text[self.sent_chars : end],
            tokens=pieces,
            token_logprobs=[float(lp) for lp in logprobs[start:count]],
            top_logprobs=top_logprob_dicts(detokenizer, tops, logprobs, start, count)
            if any(tops[start:count])
            else None,
            text_offset=offsets,
        )
        self.sent_tokens, self.sent_chars = count, end
        return release
