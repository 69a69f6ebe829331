"""Frames and the plain-data encoding that crosses the sandbox's trust boundaries.

Runs on both sides (host and sandbox, Python 3.9+, stdlib only). Values travel as tagged
JSON: JSON scalars and arrays are ``None/bool/int/float/str`` and lists; a one-key object
carries every other supported type (``{"t": [...]}`` tuple, ``{"d": [[k, v], ...]}`` dict, …).
Decoding builds builtin objects only, so nothing a sandboxed process sends can make the
receiver run its code. The sending side reduces subclasses of builtin types (``Counter``,
``OrderedDict``, namedtuples, ``IntEnum``, ``str`` subclasses) to their builtin base value.
"""

from __future__ import annotations

import builtins
import json
import os
import struct
import sys
from collections import OrderedDict
from typing import Any

FRAME_HEADER = struct.Struct(">I")
MAX_DEPTH = 200  # nesting of containers in one value
BIG_INT_BITS = 12_000  # larger ints travel as hex (int <-> decimal str is capped at 4300 digits)
_JSON_SCALARS = (str, float, bool, type(None))
_LEAVES = frozenset({int, str, float, bool, type(None)})  # JSON's own scalars
_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False)
_scanner = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[attr-defined]
_c_encoder = getattr(json.encoder, "c_make_encoder", None)


def _no_default(value: Any) -> Any:
    raise TypeError(f"not JSON: {type(value).__name__}")


if _c_encoder is not None:  # the C encoder, called directly: skips three Python layers
    _encode_chunks = _c_encoder(
        None, _no_default, json.encoder.encode_basestring, None, ":", ",", False, False, True
    )

    def dumps(value: Any) -> str:
        return "".join(_encode_chunks(value, 0))

else:  # pragma: no cover - CPython always has _json

    def dumps(value: Any) -> str:
        return _encoder.encode(value)


class WireError(ValueError):
    """A frame or value that does not follow the protocol (treated as a broken peer)."""


class Unsupported(TypeError):
    """A value that is not plain data and so cannot cross the boundary."""


# ---------------------------------------------------------------- frames


def read_exact(fd: int, size: int) -> bytes | None:
    """``size`` bytes from a blocking ``fd``, or None at end of file."""
    chunks: list[bytes] = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, limit: int = 1 << 30) -> Any:
    """One JSON frame from a blocking ``fd``; None at end of file; WireError when too big."""
    header = read_exact(fd, FRAME_HEADER.size)
    if header is None:
        return None
    (size,) = FRAME_HEADER.unpack(header)
    if size > limit:
        raise WireError(f"frame of {size} bytes exceeds the limit of {limit}")
    body = read_exact(fd, size)
    return None if body is None else json.loads(body)


def pack_frame(payload: Any) -> bytes:
    body = dumps(payload).encode("utf-8", "surrogatepass")
    return FRAME_HEADER.pack(len(body)) + body


def loads(body: bytes) -> Any:
    """One JSON document (the C scanner directly: this runs for every sandboxed call)."""
    text = body.decode("utf-8", "surrogatepass")
    value, end = _scanner(text, 0)
    if end != len(text):
        raise ValueError("trailing data after the JSON value")
    return value


def write_frame(fd: int, payload: Any) -> None:
    """Write one JSON frame to a blocking ``fd``."""
    data = memoryview(pack_frame(payload))
    while data:
        data = data[os.write(fd, data) :]


def parse_frames(buffer: bytearray, limit: int) -> list[Any]:
    """Complete frames at the start of ``buffer`` (consumed); WireError on garbage."""
    frames = []
    while len(buffer) >= FRAME_HEADER.size:
        (size,) = FRAME_HEADER.unpack_from(buffer)
        if size > limit:
            raise WireError(f"frame of {size} bytes exceeds the limit of {limit}")
        if len(buffer) < FRAME_HEADER.size + size:
            break
        body = bytes(buffer[FRAME_HEADER.size : FRAME_HEADER.size + size])
        del buffer[: FRAME_HEADER.size + size]
        try:
            frames.append(loads(body))
        except (ValueError, RecursionError, StopIteration) as exc:
            raise WireError(f"malformed frame: {exc}") from None
    return frames


# ---------------------------------------------------------------- values: sending side


def encode(value: Any, depth: int = 0) -> Any:
    """``value`` as tagged JSON; raises Unsupported for anything that is not plain data."""
    if depth > MAX_DEPTH:
        raise Unsupported("a value nested more than 200 levels deep")
    kind = type(value)
    if kind is int:
        return value if value.bit_length() < BIG_INT_BITS else {"i": format(value, "x")}
    if kind in _JSON_SCALARS:
        return value
    if kind is list:
        kinds = set(map(type, value))
        if kinds <= _LEAVES and (int not in kinds or _small_ints(value)):
            return value  # the common case, checked in C: a list of JSON scalars
        return [encode(item, depth + 1) for item in value]
    if kind is tuple:
        return {"t": [encode(item, depth + 1) for item in value]}
    if kind is dict:
        return {"d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    return _encode_other(value, depth)


_BIG = 1 << BIG_INT_BITS


def _small_ints(values: list[Any]) -> bool:
    try:  # numbers only: two C-level passes
        return bool(min(values) > -_BIG and max(values) < _BIG)
    except TypeError:
        return all(item.bit_length() < BIG_INT_BITS for item in values if type(item) is int)


def _encode_other(value: Any, depth: int) -> Any:
    # Exact types of the tagged scalars first, then subclasses reduced to their base value.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return encode(int.__int__(value), depth)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, complex):
        return {"c": [complex.real.__get__(value), complex.imag.__get__(value)]}  # type: ignore[attr-defined]
    if isinstance(value, bytes):
        return {"b": bytes.hex(value)}
    if isinstance(value, bytearray):
        return {"y": bytearray.hex(value)}
    # Fraction and Decimal only if their modules are loaded (no value can be one otherwise;
    # importing them would slow every sandbox start).
    fractions = sys.modules.get("fractions")
    if fractions is not None and isinstance(value, fractions.Fraction):
        return {"q": [encode(value.numerator, depth), encode(value.denominator, depth)]}
    decimal = sys.modules.get("decimal")
    if decimal is not None and isinstance(value, decimal.Decimal):
        return {"m": decimal.Decimal.__str__(value)}
    if isinstance(value, list):
        return [encode(item, depth + 1) for item in list.__iter__(value)]
    if isinstance(value, tuple):
        return {"t": [encode(item, depth + 1) for item in tuple.__iter__(value)]}
    if isinstance(value, dict):
        items = OrderedDict.items(value) if isinstance(value, OrderedDict) else dict.items(value)
        return {"d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in items]}
    if isinstance(value, frozenset):
        return {"f": [encode(item, depth + 1) for item in frozenset.__iter__(value)]}
    if isinstance(value, set):
        return {"s": [encode(item, depth + 1) for item in set.__iter__(value)]}
    raise Unsupported(f"unsupported type {type(value).__module__}.{type(value).__qualname__}")


# ---------------------------------------------------------------- values: receiving side


def decode(data: Any, depth: int = 0) -> Any:
    """Builtin objects from tagged JSON (sent by an untrusted peer); WireError if malformed."""
    if depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    kind = type(data)
    if kind in (int, str, float, bool) or data is None:
        return data
    if kind is list:
        if not set(map(type, data)) - _LEAVES:
            return data  # already builtin scalars only
        return [decode(item, depth + 1) for item in data]
    if kind is not dict or len(data) != 1:
        raise WireError(f"malformed value of type {kind.__name__}")
    ((tag, body),) = data.items()
    try:
        return _decode_tagged(tag, body, depth)
    except (TypeError, ValueError, ArithmeticError) as exc:  # decimal's errors included
        raise WireError(f"malformed {tag!r} value: {exc}") from None


def _items(body: Any, depth: int) -> list[Any]:
    if type(body) is not list:
        raise WireError("container body must be a list")
    return [decode(item, depth + 1) for item in body]


def _decode_tagged(tag: str, body: Any, depth: int) -> Any:
    if tag == "t":
        return tuple(_items(body, depth))
    if tag == "d":
        if type(body) is not list or not all(type(p) is list and len(p) == 2 for p in body):
            raise WireError("dict body must be a list of pairs")
        return {decode(k, depth + 1): decode(v, depth + 1) for k, v in body}
    if tag == "s":
        return set(_items(body, depth))
    if tag == "f":
        return frozenset(_items(body, depth))
    if tag in ("b", "y") and type(body) is str:
        return bytes.fromhex(body) if tag == "b" else bytearray.fromhex(body)
    if tag == "i" and type(body) is str:
        return int(body, 16)
    if tag == "c" and type(body) is list and len(body) == 2:
        real, imag = (float(part) for part in body if type(part) in (int, float))
        return complex(real, imag)
    if tag == "q" and type(body) is list and len(body) == 2:
        numerator, denominator = (decode(part, depth + 1) for part in body)
        if type(numerator) is not int or type(denominator) is not int:
            raise WireError("fraction parts must be ints")
        import fractions

        return fractions.Fraction(numerator, denominator)
    if tag == "m" and type(body) is str and len(body) < 10_000:
        import decimal

        return decimal.Decimal(body)
    raise WireError(f"unknown tag {tag!r}")


# ---------------------------------------------------------------- exceptions


def exception_names(exc: BaseException) -> list[str]:
    """The names of the builtin exception classes in ``exc``'s MRO, most specific first."""
    names = []
    for klass in type.__dict__["__mro__"].__get__(type(exc)):
        if klass.__module__ == "builtins" and isinstance(
            getattr(builtins, klass.__name__, None), type
        ):
            names.append(klass.__name__)
    return names


def exception_message(exc: BaseException, limit: int = 2000) -> str:
    try:
        text = str(exc)
    except BaseException:  # the exception's own __str__ is untrusted code on this side
        text = "<unprintable>"
    return text[:limit]
