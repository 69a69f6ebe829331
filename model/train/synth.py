"""Generated fine-tuning data: small docstring tasks with doctests and verified bodies.

Each task family has several names, argument names, wordings and correct bodies. Doctest outputs
are computed by running the body on random inputs, and every finished function is then checked
by running its own doctests in a separate process: only functions whose doctests pass are kept.
None of this text comes from HumanEval. The families themselves (the data) live in
``model/train/synth_families/``; this module turns them into examples.
"""

from __future__ import annotations

import random

from model.train.synth_families import FAMILIES, Family

__all__ = ["FAMILIES", "Family", "generate", "make_example", "verify_examples"]


_DOC_STYLES = ("plain", "space", "block", "example")


def _hint(hint: str, modern: bool) -> str:
    if modern:
        return (
            hint.replace("List[", "list[")
            .replace("Dict[", "dict[")
            .replace("Optional[int]", "int | None")
        )
    return hint


def _wrap(text: str, indent: str, width: int = 76) -> list[str]:
    words = text.split(" ")
    lines: list[str] = []
    current = ""
    for word in words:
        if current and len(indent) + len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    return lines


def make_example(family: Family, r: random.Random) -> dict | None:
    """One prompt/completion pair with doctest outputs computed from the body; None if unusable."""
    name = r.choice(family.names)
    chosen: list[str] = []
    for candidates, _ in family.params:
        options = [c for c in candidates if c not in chosen and c != name]
        chosen.append(r.choice(options))
    keys = dict(zip("abc", chosen, strict=False))
    body = r.choice(family.bodies).format(**keys)
    if "factorial(" in body and name != "factorial":
        body = body.replace("factorial(", f"{name}(")
    description = r.choice(family.descriptions).format(**keys)
    typed = r.random() < 0.6
    modern = r.random() < 0.5
    if typed:
        params = ", ".join(
            f"{p}: {_hint(h, modern)}" for p, (_, h) in zip(chosen, family.params, strict=True)
        )
        signature = f"def {name}({params}) -> {_hint(family.returns, modern)}:"
    else:
        signature = f"def {name}({', '.join(chosen)}):"
    source_body = "\n".join("    " + line for line in body.splitlines())
    namespace: dict = {}
    try:
        exec(f"def {name}({', '.join(chosen)}):\n{source_body}\n", namespace)
    except Exception:
        return None
    func = namespace[name]
    examples: list[tuple[str, str]] = []
    seen_calls: set[str] = set()
    for _ in range(r.choice([1, 2, 2, 3, 3])):
        args = family.inputs(r)
        call = f"{name}({', '.join(repr(a) for a in args)})"
        if call in seen_calls:
            continue
        try:
            value = func(*[eval(repr(a)) for a in args])
        except Exception:
            continue
        want = repr(value)
        if len(call) > 70 or len(want) > 70:
            continue
        seen_calls.add(call)
        examples.append((call, want))
    if not examples:
        return None
    style = r.choice(_DOC_STYLES)
    indent = "    "
    desc_lines = _wrap(description, indent + 4 * " ")
    doc: list[str] = []
    if style == "block":
        doc.append(f'{indent}"""')
        doc += [indent + line for line in desc_lines]
        doc.append("")
    else:
        lead = " " if style == "space" else ""
        doc.append(f'{indent}"""{lead}{desc_lines[0]}')
        doc += [indent + line for line in desc_lines[1:]]
        if style == "example":
            doc.append(f"{indent}For example:")
    for call, want in examples:
        doc.append(f"{indent}>>> {call}")
        doc.append(f"{indent}{want}")
    doc.append(f'{indent}"""')
    header = ""
    if typed and not modern:
        needed = [t for t in ("List", "Dict", "Optional") if f"{t}[" in signature]
        if needed:
            header = f"from typing import {', '.join(needed)}\n\n\n"
    prompt = header + signature + "\n" + "\n".join(doc) + "\n"
    return {"prompt": prompt, "completion": source_body + "\n", "source": f"synthetic:{name}"}


def verify_examples(examples: list[dict]) -> list[bool]:
    """Run each function's doctests (in this process: the code is our own templates)."""
    import doctest

    results: list[bool] = []
    parser = doctest.DocTestParser()
    for example in examples:
        source = example["prompt"] + example["completion"]
        namespace: dict = {}
        try:
            exec(source, namespace)
            name = example["source"].split(":", 1)[1]
            test = parser.get_doctest(namespace[name].__doc__, namespace, name, None, 0)
            runner = doctest.DocTestRunner(verbose=False, optionflags=0)
            runner.run(test, out=lambda _s: None)
            ok = runner.failures == 0 and runner.tries > 0
        except Exception:
            ok = False
        results.append(ok)
    return results


def eval_entry_points() -> set[str]:
    """HumanEval's function names: generated functions never use them."""
    import gzip
    import json

    try:
        from model.train.corpus import humaneval_path

        with gzip.open(humaneval_path(), "rt", encoding="utf-8") as handle:
            return {json.loads(line)["entry_point"] for line in handle if line.strip()}
    except ImportError:
        return set()


def generate(count: int, seed: int = 0, *, workers: int = 2) -> tuple[list[dict], dict]:
    """``count`` distinct, verified examples spread over all families, and a small report."""
    from concurrent.futures import ProcessPoolExecutor

    reserved = eval_entry_points()

    r = random.Random(seed)
    candidates: list[dict] = []
    seen: set[str] = set()
    attempts = 0
    while len(candidates) < count and attempts < count * 20:
        attempts += 1
        example = make_example(r.choice(FAMILIES), r)
        if example is None or example["prompt"] in seen:
            continue
        if example["source"].split(":", 1)[1] in reserved:
            continue
        seen.add(example["prompt"])
        candidates.append(example)
    chunks = [candidates[i : i + 500] for i in range(0, len(candidates), 500)]
    # Separate processes: a generated doctest cannot disturb the generator itself.
    with ProcessPoolExecutor(max_workers=workers) as pool:
        verdicts = [ok for chunk in pool.map(verify_examples, chunks) for ok in chunk]
    kept = [e for e, ok in zip(candidates, verdicts, strict=True) if ok]
    report = {
        "families": len(FAMILIES),
        "generated": len(candidates),
        "verified": len(kept),
        "failed_verification": len(candidates) - len(kept),
    }
    return kept, report
