"""Meaning-preserving rewrites of a problem's docstring, for ``docomplete eval paraphrase``.

Six rewrites, each applied only where it is safe, chosen per variant from a seeded stream:

* ``rename`` — the entry point's parameters get other names (a curated table), consistently in
  the signature, the docstring (prose and examples, never inside quoted text) and the canonical
  body; skipped for a name that is also an English word in prose (``a``) or used as a keyword
  argument, attribute or inside an f-string, or when the new name is taken;
* ``synonyms`` — words and phrases from a small curated table ("compute" → "calculate");
* ``register`` — an imperative opening ("Return …") said another way ("Your task is to return …");
* ``reorder`` — two adjacent self-contained sentences of a prose paragraph swap places (none
  that refers back with "it", "this", "then", … and none that sets the context, "Given …");
* ``move_examples`` — the examples go before the description (or after it);
* ``drop_examples`` — of several examples in a block, one is kept.

The hidden test is never touched: it calls ``candidate`` positionally, so renamed parameters
keep it valid. A rewrite whose program no longer parses or whose ``>>>`` examples changed in any
other way than a rename or a drop falls back to the original prompt.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import io
import keyword
import random
import re
import textwrap
import tokenize
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from evalkit.data import Problem
from evalkit.docstring_layout import (
    LIST_ITEM_RE,
    NUMBERED_HEADER_RE,
    DocLiteral,
    classify_lines,
    example_items,
    keep_case,
    phrase_pattern,
    split_segments,
    split_sentences,
    sub_outside_quotes,
)
from evalkit.paraphrase_tables import (
    ANAPHORA,
    CONTEXT_OPENERS,
    IMPERATIVES,
    NO_RENAME,
    REGISTER_TEMPLATES,
    RENAMES,
    SYNONYMS,
)

TRANSFORMS = ("rename", "register", "synonyms", "reorder", "drop_examples", "move_examples")


@dataclass(frozen=True)
class Rewrite:
    """A problem as rewritten, and which rewrites it went through (empty: unchanged)."""

    problem: Problem
    transforms: tuple[str, ...]
    note: str = ""


@dataclass
class _State:
    doc: DocLiteral
    entry: str
    params: list[str]
    taken: set[str]
    renames: dict[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# The rewrites; each returns False where it does not apply


def _rename(state: _State, rng: random.Random) -> bool:
    chosen: dict[str, str] = {}
    for name in state.params:
        new = RENAMES.get(name)
        if new is None or name in NO_RENAME or new in state.taken or new in chosen.values():
            continue
        chosen[name] = new
    if not chosen:
        return False
    state.renames = chosen
    for old, new in chosen.items():
        pattern = re.compile(rf"(?<![\w.']){re.escape(old)}(?![\w'])")
        state.doc.lines = [
            sub_outside_quotes(line, pattern, lambda _m, new=new: new) for line in state.doc.lines
        ]
    return True


def _register(state: _State, rng: random.Random) -> bool:
    kinds = classify_lines(state.doc.lines, state.entry)
    verbs = "|".join(sorted(IMPERATIVES))
    pattern = re.compile(rf"(^|(?<=[.!?]\s))({verbs})\b")
    for i, line in enumerate(state.doc.lines):
        if kinds[i] != "prose":
            continue
        indent, text = line[: len(line) - len(line.lstrip())], line.strip()
        match = pattern.search(text)
        if match:
            template = rng.choice(REGISTER_TEMPLATES)
            new = template.format(verb=match.group(2).lower())
            state.doc.lines[i] = indent + text[: match.start(2)] + new + text[match.end(2) :]
            return True
    return False


def _synonyms(state: _State, rng: random.Random) -> bool:
    kinds = classify_lines(state.doc.lines, state.entry)
    prose = [i for i, kind in enumerate(kinds) if kind in ("prose", "header")]
    identifiers = {name.lower() for name in [*state.params, *state.renames.values(), state.entry]}
    usable = []
    for source, target in SYNONYMS:
        if source in identifiers:
            continue
        pattern = phrase_pattern([source])
        if any(pattern.search(state.doc.lines[i]) for i in prose):
            usable.append((source, target))
    picked = dict([item for item in usable if rng.random() < 0.6] or usable[:1])
    if not picked:
        return False
    # One pass over all picked phrases, so "compute" → "calculate" is not turned back again.
    pattern = phrase_pattern(sorted(picked, key=len, reverse=True))

    def swap(match: re.Match[str]) -> str:
        target = picked[" ".join(match.group(0).lower().split())]
        return keep_case(target)(match)

    for i in prose:
        state.doc.lines[i] = sub_outside_quotes(state.doc.lines[i], pattern, swap)
    return True


def _self_contained(sentence: str) -> bool:
    words = [w.strip(".,;:!?()'\"").lower() for w in sentence.split()]
    if len(words) < 3 or not sentence.endswith((".", "!", "?")):
        return False
    opening = " ".join(words[:3])
    if any(opening.startswith(opener) for opener in CONTEXT_OPENERS):
        return False
    return not any(word in ANAPHORA for word in words)


def _reorder(state: _State, rng: random.Random) -> bool:
    lines, doc = state.doc.lines, state.doc
    kinds = classify_lines(lines, state.entry)
    paragraphs: list[list[int]] = []
    for i, line in enumerate(lines):
        plain = (
            kinds[i] == "prose"
            and line.startswith(doc.indent)
            and not line[len(doc.indent) :][:1].isspace()
            and not LIST_ITEM_RE.match(line.strip())
        )
        if plain and paragraphs and paragraphs[-1][-1] == i - 1:
            paragraphs[-1].append(i)
        elif plain:
            paragraphs.append([i])
    options = []
    for members in paragraphs:
        sentences = split_sentences(" ".join(lines[i].strip() for i in members))
        for j in range(len(sentences) - 1):
            if _self_contained(sentences[j]) and _self_contained(sentences[j + 1]):
                options.append((members, sentences, j))
    if not options:
        return False
    members, sentences, j = rng.choice(options)
    sentences[j], sentences[j + 1] = sentences[j + 1], sentences[j]
    width = max(60, *(len(lines[i].strip()) for i in members))
    wrapped = textwrap.wrap(
        " ".join(sentences), width=width, break_long_words=False, break_on_hyphens=False
    )
    lines[members[0] : members[-1] + 1] = [doc.indent + text for text in wrapped]
    return True


def _drop_examples(state: _State, rng: random.Random) -> bool:
    lines = state.doc.lines
    dropped: set[int] = set()
    for group, members in split_segments(classify_lines(lines, state.entry)):
        items = example_items(lines, members, state.entry) if group == "ex" else []
        if len(items) < 2:
            continue
        keep = rng.randrange(len(items))
        for index, item in enumerate(items):
            if index != keep:
                dropped.update(item)
        header = NUMBERED_HEADER_RE.match(lines[items[keep][0]])
        if header:
            lines[items[keep][0]] = f"{header.group(1)}Example:"
    if not dropped:
        return False
    state.doc.lines = [line for i, line in enumerate(lines) if i not in dropped]
    while state.doc.lines and not state.doc.lines[-1].strip():
        state.doc.lines.pop()
    return True


def _move_examples(state: _State, rng: random.Random) -> bool:
    lines = state.doc.lines
    parts = split_segments(classify_lines(lines, state.entry))
    moved: list[str] = []
    rest: list[str] = []
    for group, members in parts:
        if group == "ex":
            moved += ([""] if moved else []) + [lines[i] for i in members]
        elif group == "prose":
            rest += [lines[i] for i in members]
        elif rest and rest[-1].strip():
            rest.append("")
    while rest and not rest[-1].strip():
        rest.pop()
    if not moved or not rest:
        return False
    # A blank line always separates them: text right after a >>> block would read as output.
    last = [group for group, _ in parts if group != "blank"][-1]
    state.doc.lines = [*moved, "", *rest] if last == "ex" else [*rest, "", *moved]
    return True


_APPLY: dict[str, Callable[[_State, random.Random], bool]] = {
    "rename": _rename,
    "register": _register,
    "synonyms": _synonyms,
    "reorder": _reorder,
    "drop_examples": _drop_examples,
    "move_examples": _move_examples,
}

# ----------------------------------------------------------------------------------------------
# Code: the signature and the canonical body follow the renamed parameters


def _rename_edits(
    source: str, renames: dict[str, str], start: tuple[int, int], body: tuple[int, int]
) -> list[tuple[tuple[int, int], str, str]] | None:
    """``(position, old, new)`` per renamed name after ``start``; None where unsafe."""
    tokens = [
        t
        for t in tokenize.generate_tokens(io.StringIO(source).readline)
        if t.type not in (tokenize.NL, tokenize.COMMENT)
    ]
    brackets: list[str] = []
    edits = []
    for i, token in enumerate(tokens):
        if token.type == tokenize.OP and token.string in "([{":
            brackets.append(token.string)
        elif token.type == tokenize.OP and token.string in ")]}" and brackets:
            brackets.pop()
        if token.start < start:
            continue
        if token.type == tokenize.STRING and token.start >= body:
            literal = token.string.lower()
            if "f" in literal[: literal.find(literal[-1])] and any(
                re.search(rf"\b{re.escape(old)}\b", token.string) for old in renames
            ):
                return None
        if token.type != tokenize.NAME or token.string not in renames:
            continue
        if i and tokens[i - 1].string == ".":
            continue  # someone's attribute, not the parameter
        following = tokens[i + 1].string if i + 1 < len(tokens) else ""
        if token.start >= body and following == "=" and brackets and brackets[-1] == "(":
            return None  # a keyword argument of some call: renaming would break it
        edits.append((token.start, token.string, renames[token.string]))
    return edits


def _offsets(source: str) -> list[int]:
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    return starts


def _entry_node(tree: ast.Module, entry: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == entry:
            return node
    return None


def _examples(docstring: str, renames: dict[str, str]) -> list[tuple[str, str]]:
    from evalkit.doctest_runner import extract_examples

    result = []
    for example in extract_examples(docstring):
        source = example.source
        for old, new in renames.items():
            pattern = re.compile(rf"(?<![\w.']){re.escape(old)}(?![\w'])")
            source = sub_outside_quotes(source, pattern, lambda _m, new=new: new)
        result.append((source, example.want))
    return result


def rewrite_problem(problem: Problem, rng: random.Random) -> Rewrite:
    """One paraphrase of ``problem``: a seeded choice among the rewrites that apply."""
    program = problem.prompt + problem.canonical_solution
    try:
        node = _entry_node(ast.parse(problem.prompt), problem.entry_point)
        ast.parse(program)
    except SyntaxError:
        return Rewrite(problem, (), "prompt does not parse")
    if node is None or not node.body or not isinstance(node.body[0], ast.Expr):
        return Rewrite(problem, (), "no docstring right under the signature")
    docstring_node = node.body[0].value
    if not (isinstance(docstring_node, ast.Constant) and isinstance(docstring_node.value, str)):
        return Rewrite(problem, (), "no docstring right under the signature")
    offsets = _offsets(program)
    doc_start = offsets[docstring_node.lineno - 1] + docstring_node.col_offset
    doc_end = offsets[(docstring_node.end_lineno or 1) - 1] + (docstring_node.end_col_offset or 0)
    doc = DocLiteral.parse(program[doc_start:doc_end], " " * (node.col_offset + 4))
    if doc is None:
        return Rewrite(problem, (), "docstring is not triple-quoted")
    arguments = node.args
    params = [
        a.arg
        for a in (
            *arguments.posonlyargs,
            *arguments.args,
            *arguments.kwonlyargs,
            arguments.vararg,
            arguments.kwarg,
        )
        if a is not None
    ]
    taken = {t.string for t in tokenize.generate_tokens(io.StringIO(program).readline)}
    taken |= set(re.findall(r"\w+", problem.test)) | set(dir(builtins)) | set(keyword.kwlist)
    state = _State(doc=doc, entry=problem.entry_point, params=params, taken=taken)
    state.params = [p for p in params if not re.search(rf"\b{re.escape(p)}\s*=", problem.test)]
    applied = [name for name in TRANSFORMS if rng.random() < 0.5 and _APPLY[name](state, rng)]
    if not applied:
        for name in rng.sample(TRANSFORMS, len(TRANSFORMS)):
            if _APPLY[name](state, rng):
                applied = [name]
                break
    if not applied:
        return Rewrite(problem, (), "no rewrite applies")
    return _assemble(problem, program, state, (doc_start, doc_end), node, tuple(applied))


def _assemble(
    problem: Problem,
    program: str,
    state: _State,
    doc_span: tuple[int, int],
    node: ast.FunctionDef | ast.AsyncFunctionDef,
    applied: tuple[str, ...],
) -> Rewrite:
    """Put the new docstring and names into the program; check it; split prompt from body."""
    offsets = _offsets(program)
    body_start = (node.body[0].lineno, node.body[0].col_offset)
    edits: list[tuple[int, int, str]] = [(doc_span[0], doc_span[1], state.doc.render())]
    if state.renames:
        found = _rename_edits(program, state.renames, (node.lineno, 0), body_start)
        if found is None:
            return Rewrite(problem, (), "a parameter cannot be renamed safely")
        for (row, col), old, new in found:
            start = offsets[row - 1] + col
            if not doc_span[0] <= start < doc_span[1]:
                edits.append((start, start + len(old), new))
    text, cut = program, len(problem.prompt)
    for begin, end, new in sorted(edits, reverse=True):
        text = text[:begin] + new + text[end:]
        if begin < cut:
            cut += len(new) - (end - begin)
    prompt, solution = text[:cut], text[cut:]
    try:
        new_node = _entry_node(ast.parse(prompt), problem.entry_point)
        ast.parse(text)
    except SyntaxError:
        return Rewrite(problem, (), f"rewrite {'+'.join(applied)} broke the syntax")
    old_doc = ast.get_docstring(_entry_node(ast.parse(problem.prompt), problem.entry_point))  # type: ignore[arg-type]
    new_doc = ast.get_docstring(new_node) if new_node else None  # type: ignore[arg-type]
    before, after = _examples(old_doc or "", state.renames), _examples(new_doc or "", {})
    kept = all(example in before for example in after) and (
        sorted(after) == sorted(before)
        if "drop_examples" not in applied
        else bool(after) or not before
    )
    if not kept:
        return Rewrite(problem, (), f"rewrite {'+'.join(applied)} changed the >>> examples")
    rewritten = replace(problem, prompt=prompt, canonical_solution=solution)
    return Rewrite(rewritten, applied)


def variant_rng(seed: int, task_id: str, variant: int, attempt: int = 0) -> random.Random:
    """The random stream of one variant of one problem (stable across processes)."""
    key = f"{seed}:{task_id}:{variant}:{attempt}".encode()
    return random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))


def paraphrase_variants(problem: Problem, count: int, seed: int) -> list[Rewrite]:
    """``count`` rewrites of ``problem``, distinct from it and each other where possible."""
    seen = {problem.prompt}
    variants = []
    for variant in range(1, count + 1):
        best = None
        for attempt in range(8):
            candidate = rewrite_problem(
                problem, variant_rng(seed, problem.task_id, variant, attempt)
            )
            best = best or candidate
            if candidate.problem.prompt not in seen:
                best = candidate
                break
        assert best is not None
        seen.add(best.problem.prompt)
        variants.append(best)
    return variants
