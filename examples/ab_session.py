"""A scripted user in a real editor session with two A/B arms, for trying ``docomplete ab report``.

Starts ``docomplete lsp`` over stdio (as an editor does), opens several copies of
``examples/demo.py`` as documents (functions renamed per copy, so no answer comes from the
cache), asks for an inline completion in every function, reports the
first item as shown, and accepts it when the server says its doctests passed (else moves on, which
the server counts as a dismissal). Accepted bodies are written into the document and kept, so
the retention checks (short delays here) find them. Then run::

    docomplete ab report --telemetry TELEMETRY_FILE

Usage: ``python examples/ab_session.py --telemetry /tmp/ab.sqlite3 [--copies 6] [--n 1]``.
With ``n = 1`` what the user sees is one sample, so the temperature shows directly; with more
candidates the doctest ranking hides much of the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from lsprotocol import types

from server.demo import function_slots
from server.lsp_session import LspSession

DEMO = Path(__file__).with_name("demo.py")


def renamed_copy(copy: int) -> str:
    """demo.py with every function (and its examples) renamed ``name_<copy>``."""
    text = DEMO.read_text(encoding="utf-8")
    for slot in function_slots(text):
        text = text.replace(f"{slot.name}(", f"{slot.name}_{copy}(")
    return text


def insert(text: str, line: int, character: int, new: str) -> str:
    lines = text.split("\n")
    offset = sum(len(item) + 1 for item in lines[:line]) + character
    return text[:offset] + new + text[offset:]


async def drive(args: argparse.Namespace) -> dict[str, Any]:
    settings = {
        "backend": args.backend,
        "n": args.n,
        "abArms": [
            {"name": "T0.2", "temperature": 0.2},
            {"name": "T1.0", "temperature": 1.0},
        ],
        "abAssignment": args.assignment,
        "telemetryFile": str(args.telemetry),
        "retentionDelays": [2, 5],
    }
    counts = {"requests": 0, "shown": 0, "accepted": 0}
    started = time.perf_counter()
    async with LspSession(settings) as session:
        for copy in range(args.copies):
            uri = f"file:///tmp/docomplete-ab/copy{copy}.py"
            text = renamed_copy(copy)
            session.open(uri, text)
            for name in [slot.name for slot in function_slots(text)]:
                slot = next(s for s in function_slots(text) if s.name == name)
                result = await session.inline(uri, slot.line, slot.character)
                counts["requests"] += 1
                if not result.items or result.items[0].command is None:
                    continue
                item = result.items[0]
                details = dict(item.command.arguments[0])
                session.client.protocol.notify("docomplete/shown", details)
                counts["shown"] += 1
                events = await session.telemetry()
                completion = next(
                    e
                    for e in reversed(events)
                    if e["event"] == "completion" and e["requestId"] == details["requestId"]
                )
                print(f"{name:18s} arm {completion['arm']:5s} {completion['doctest']}")
                if completion["doctest"] != "passed":
                    continue  # the user types on: the next request dismisses it
                await session.client.workspace_execute_command_async(
                    types.ExecuteCommandParams(command=item.command.command, arguments=[details])
                )
                text = insert(text, slot.line, slot.character, str(item.insert_text))
                session.open(uri, text)  # the editor's didChange after inserting
                counts["accepted"] += 1
        await asyncio.sleep(6)  # let the retention checks (2 s, 5 s) run
        await session.telemetry()  # answered once everything is on disk
    counts["seconds"] = round(time.perf_counter() - started, 1)
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--telemetry", type=Path, required=True, help="database to write")
    parser.add_argument("--copies", type=int, default=6, help="documents (copies of demo.py)")
    parser.add_argument("--backend", default="embedded", help='"embedded" or a model server URL')
    parser.add_argument("--n", type=int, default=1, help="candidates per request")
    parser.add_argument("--assignment", default="prompt", choices=("prompt", "document", "session"))
    args = parser.parse_args()
    counts = asyncio.run(drive(args))
    print(counts)
    print(f"now run: docomplete ab report --telemetry {args.telemetry}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
