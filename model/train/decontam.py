"""Task-level decontamination: for each eval problem, the training docstrings that read most like it.

Docstrings are reduced to their prose (doctest examples dropped), lower-cased, split into
words (stop words removed) and word bigrams. Two docstrings score by IDF-weighted Jaccard
overlap of those features, so shared rare words ("palindrome", "fibonacci") count and shared
boilerplate ("return", "list") hardly does. An inverted index over the rarer features finds
the candidates, so a problem is compared with a few hundred training docstrings, not all of
them. A problem whose best neighbour scores at or above ``threshold`` is a look-alike by text;
``behaviour_check`` adds look-alikes by behaviour: a nearby training function that passes the
problem's hidden tests when run in the sandbox.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_THRESHOLD = 0.3
TOP_K = 5
RARE_DF_FRACTION = 0.02  # features in more docstrings than this do not propose candidates
_STOP_TEXT = """a an the of in on to and or for is are be it its this that these those with by
from as at if then than so such each every any all given return returns returned function
which who whose what when where there their them they you your we our i e g eg ie example
examples note should must can will may one two also into out not no only do does"""
STOP_WORDS = frozenset(_STOP_TEXT.split())
_DOCSTRING = re.compile(r'(?P<q>"""|\'\'\')(?P<body>.*?)(?P=q)', re.S)
_WORD = re.compile(r"[a-z]+")


def docstring_prose(prompt: str) -> str:
    """The last docstring of a prompt without its doctest examples (the task's description)."""
    bodies = [m.group("body") for m in _DOCSTRING.finditer(prompt)]
    if not bodies:
        return ""
    kept: list[str] = []
    in_example = False
    for line in bodies[-1].splitlines():
        stripped = line.strip()
        if stripped.startswith(">>>"):
            in_example = True
            continue
        if in_example and stripped:
            continue  # the expected output of an example
        in_example = False
        kept.append(stripped)
    return " ".join(" ".join(kept).split())


def features(text: str) -> frozenset[str]:
    """Content words and word bigrams of ``text`` (bigrams skip over stop words)."""
    words = [w for w in _WORD.findall(text.lower()) if len(w) > 1 and w not in STOP_WORDS]
    grams = {f"{a} {b}" for a, b in itertools.pairwise(words)}
    return frozenset(words) | frozenset(grams)


@dataclass
class TrainingDoc:
    """One distinct training docstring and the records that carry it."""

    text: str
    feats: frozenset[str]
    sources: list[str] = field(default_factory=list)  # the first few
    count: int = 0
    programs: list[tuple[str, str]] = field(default_factory=list)  # (function name, source)


@dataclass
class DocIndex:
    """Distinct training docstrings with document frequencies and an inverted index."""

    docs: list[TrainingDoc]
    idf: dict[str, float]
    postings: dict[str, list[int]]

    @classmethod
    def build(cls, records: Iterable[dict]) -> DocIndex:
        by_text: dict[str, TrainingDoc] = {}
        for record in records:
            text = docstring_prose(str(record.get("prompt", "")))
            if not text:
                continue
            doc = by_text.get(text)
            if doc is None:
                doc = by_text[text] = TrainingDoc(text, features(text))
            doc.count += 1
            source = str(record.get("source", "?"))
            if len(doc.sources) < 3:
                doc.sources.append(source)
            name = source.rsplit(":", 1)[-1]
            program = str(record.get("prompt", "")) + str(record.get("completion", ""))
            distinct = all(p != program for _, p in doc.programs)
            if len(doc.programs) < 2 and name.isidentifier() and distinct:
                doc.programs.append((name, program))  # methods ("Class.name") are skipped
        docs = list(by_text.values())
        df: Counter[str] = Counter(f for d in docs for f in d.feats)
        total = max(len(docs), 1)
        idf = {f: math.log((total + 1) / (n + 0.5)) for f, n in df.items()}
        rare = max(20, int(RARE_DF_FRACTION * total))
        postings: dict[str, list[int]] = defaultdict(list)
        for i, doc in enumerate(docs):
            for f in doc.feats:
                if df[f] <= rare:
                    postings[f].append(i)
        return cls(docs, idf, dict(postings))

    def weight(self, feats: Iterable[str]) -> float:
        unseen = math.log(len(self.docs) + 1)  # a feature no training docstring has
        return sum(self.idf.get(f, unseen) for f in feats)

    def nearest(self, text: str, k: int = TOP_K) -> list[dict[str, Any]]:
        """The ``k`` training docstrings most like ``text``, best first."""
        query = features(text)
        candidates: set[int] = set()
        for f in query:
            candidates.update(self.postings.get(f, ()))
        scored = []
        for i in candidates:
            doc = self.docs[i]
            shared = query & doc.feats
            union = self.weight(query | doc.feats)
            score = self.weight(shared) / union if union else 0.0
            scored.append((score, i, sorted(shared, key=lambda f: -self.idf.get(f, 0.0))))
        scored.sort(key=lambda item: (-item[0], item[1]))
        return [
            {
                "doc_id": i,
                "score": round(score, 4),
                "docstring": self.docs[i].text[:300],
                "sources": self.docs[i].sources,
                "records": self.docs[i].count,
                "shared": shared[:12],
            }
            for score, i, shared in scored[:k]
        ]


def read_records(paths: Sequence[Path]) -> list[dict]:
    records: list[dict] = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            records += [json.loads(line) for line in handle if line.strip()]
    return records


def task_report(
    problems: Sequence[dict],
    index: DocIndex,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    k: int = TOP_K,
    eval_name: str = "",
) -> list[dict[str, Any]]:
    """One row per problem: its prose, nearest training docstrings and the look-alike flag."""
    rows = []
    for problem in problems:
        prose = docstring_prose(str(problem.get("prompt", "")))
        neighbours = index.nearest(prose, k)
        best = neighbours[0]["score"] if neighbours else 0.0
        rows.append(
            {
                "task_id": problem.get("task_id", "?"),
                "eval_set": eval_name,
                "entry_point": problem.get("entry_point", ""),
                "docstring": prose[:300],
                "best_score": best,
                "threshold": threshold,
                "look_alike": best >= threshold,
                "reason": "text" if best >= threshold else "",
                "nearest": neighbours,
            }
        )
    return rows


def behaviour_check(
    problems: Sequence[dict],
    rows: list[dict[str, Any]],
    index: DocIndex,
    *,
    neighbours: int = 10,
    timeout_s: float = 3.0,
) -> None:
    """Run the bodies of each problem's ``neighbours`` nearest training functions against
    the problem's hidden tests in the sandbox; a problem that one of them solves is a
    look-alike by behaviour (the task matches even when the words do not)."""
    from evalkit.sandbox import check_many

    jobs: list[tuple[int, str, str, str]] = []  # (row, training source, program, test)
    for r, (problem, row) in enumerate(zip(problems, rows, strict=True)):
        if not problem.get("test") or not problem.get("prompt"):
            continue  # nothing to run against
        seen: set[str] = set()
        for near in row["nearest"][:neighbours]:
            doc = index.docs[near["doc_id"]]
            for name, program in doc.programs:
                if program in seen:
                    continue
                seen.add(program)
                # The problem's prompt first: its tests may call helpers defined there.
                setup = f"{problem['prompt']}    pass\n\n\n{program}"
                test = f"{problem['test']}\n\ncheck({name})\n"
                jobs.append((r, doc.sources[0], setup, test))
    results = check_many([(setup, test) for _, _, setup, test in jobs], timeout_s=timeout_s)
    for row in rows:
        row["solved_by"] = []
    for (r, source, _, _), result in zip(jobs, results, strict=True):
        if result.status == "passed" and source not in rows[r]["solved_by"]:
            rows[r]["solved_by"].append(source)
    for row in rows:
        by_text = row["best_score"] >= row["threshold"]
        by_behaviour = bool(row["solved_by"])
        row["look_alike"] = by_text or by_behaviour
        row["reason"] = "+".join(
            [why for why, hit in (("text", by_text), ("behaviour", by_behaviour)) if hit]
        )


def summarize(
    rows: Sequence[dict], threshold: float, data: Sequence[str], docs: int, neighbours_run: int = 0
) -> dict:
    by_set: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = by_set.setdefault(row["eval_set"], {"problems": 0, "look_alikes": []})
        entry["problems"] += 1
        if row["look_alike"]:
            entry["look_alikes"].append(row["task_id"])
    for entry in by_set.values():
        entry["look_alike_count"] = len(entry["look_alikes"])
    flagged: dict[str, list[str]] = {}  # training source -> the problems it looks like
    for row in rows:
        if row["look_alike"]:
            entry = by_set[row["eval_set"]]
            key = f"by_{row.get('reason') or 'text'}"
            entry[key] = entry.get(key, 0) + 1
            sources = list(row.get("solved_by", []))
            if row["best_score"] >= threshold and row["nearest"]:
                sources += row["nearest"][0]["sources"]
            for source in dict.fromkeys(sources):
                flagged.setdefault(source, []).append(str(row["task_id"]))
    return {
        "threshold": threshold,
        "neighbours_run": neighbours_run,
        "training_files": list(data),
        "distinct_training_docstrings": docs,
        "eval_sets": by_set,
        # What to drop from the training data to keep the eval sets clean.
        "flagged_sources": flagged,
    }


def markdown(summary: dict, rows: Sequence[dict], *, shown: int = 40) -> str:
    """A readable report: totals, look-alikes with their nearest docstring, closest misses."""
    out = ["# Task-level decontamination report", ""]
    out.append(
        f"Training data: {', '.join(summary['training_files'])} "
        f"({summary['distinct_training_docstrings']:,} distinct docstrings). Score: IDF-weighted "
        f"Jaccard overlap of words and word bigrams. A problem is a look-alike by text when its "
        f"best score is >= {summary['threshold']}, and by behaviour when the body of one of its "
        f"{summary.get('neighbours_run', 0)} nearest training functions passes its hidden tests."
    )
    out.append("")
    for name, entry in summary["eval_sets"].items():
        ids = ", ".join(str(t) for t in entry["look_alikes"]) or "none"
        out.append(f"* **{name}**: {entry['look_alike_count']} of {entry['problems']}: {ids}")
    out += ["", "| problem | score | look-alike | nearest training docstring (source) |"]
    out.append("|---|---:|---|---|")
    ranked = sorted(rows, key=lambda r: (not r["look_alike"], -r["best_score"]))[:shown]
    for row in ranked:
        near: dict[str, Any] = row["nearest"][0] if row["nearest"] else {}
        cell = str(near.get("docstring", ""))[:120].replace("|", "\\|")
        source = near["sources"][0] if near.get("sources") else ""
        flag = row.get("reason", "") or ("yes" if row["look_alike"] else "")
        if row.get("solved_by"):
            flag += f" (solved by {', '.join(row['solved_by'][:2])})"
        out.append(f"| {row['task_id']} | {row['best_score']:.3f} | {flag} | {cell} ({source}) |")
    return "\n".join(out) + "\n"
