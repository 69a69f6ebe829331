"""Task-level decontamination: docstring prose, nearest training docstrings by weighted
overlap, the look-alike flag, and the ``train decontam-report`` command on fixtures."""

from __future__ import annotations

import json
from pathlib import Path

from model.train.decontam import (
    DocIndex,
    behaviour_check,
    docstring_prose,
    features,
    task_report,
)

PROBLEMS = [
    {
        "task_id": "Fix/0",
        "entry_point": "spell_out",
        "prompt": 'def spell_out(n):\n    """Return the English word for each decimal digit of n,'
        ' joined by hyphens.\n    >>> spell_out(42)\n    \'four-two\'\n    """\n',
    },
    {
        "task_id": "Fix/1",
        "entry_point": "volcano",
        "prompt": 'def volcano(h):\n    """Estimate the eruption energy of a volcano from its'
        ' height in metres."""\n',
    },
]
TRAINING = [
    {
        "prompt": 'def digits_words(num):\n    """Return the English word for every decimal digit'
        ' of num, joined with hyphens.\n\n    >>> digits_words(7)\n    \'seven\'\n    """\n',
        "completion": "    ...\n",
        "source": "synthetic:digits_words",
    },
    {
        "prompt": 'def total(xs):\n    """Return the sum of the numbers in xs."""\n',
        "completion": "    return sum(xs)\n",
        "source": "synthetic:total",
    },
    {
        "prompt": 'def count(xs):\n    """Return how many numbers in xs are even."""\n',
        "completion": "    return sum(x % 2 == 0 for x in xs)\n",
        "source": "compose:count",
    },
]


def test_prose_drops_doctest_examples() -> None:
    prose = docstring_prose(PROBLEMS[0]["prompt"])
    assert prose == "Return the English word for each decimal digit of n, joined by hyphens."
    assert "hyphens" in features(prose) and "decimal digit" in features(prose)
    assert "the" not in features(prose)


def test_a_reworded_copy_is_a_look_alike_and_an_unrelated_task_is_not() -> None:
    index = DocIndex.build(TRAINING * 2)  # duplicates collapse into one docstring each
    assert len(index.docs) == 3
    rows = task_report(PROBLEMS, index, threshold=0.3, k=2)
    copy, unrelated = rows
    assert copy["look_alike"] and copy["best_score"] > 0.3
    assert copy["nearest"][0]["sources"] == ["synthetic:digits_words", "synthetic:digits_words"]
    assert copy["nearest"][0]["records"] == 2
    assert "decimal digit" in copy["nearest"][0]["shared"]
    assert not unrelated["look_alike"] and unrelated["best_score"] < 0.1


def test_a_training_function_that_passes_the_hidden_tests_is_a_look_alike_by_behaviour() -> None:
    problem = {
        "task_id": "Fix/2",
        "entry_point": "flip",
        "prompt": 'def flip(s):\n    """Swap the case of every letter in s."""\n',
        "test": "def check(candidate):\n    assert candidate('aBc') == 'AbC'\n",
    }
    toggle = {
        "prompt": 'def toggle(text):\n    """Return text with each letter in the other case."""\n',
        "completion": "    return text.swapcase()\n",
        "source": "synthetic:toggle",
    }
    upper = {
        "prompt": 'def shout(text):\n    """Return text with every letter in upper case."""\n',
        "completion": "    return text.upper()\n",
        "source": "synthetic:shout",
    }
    index = DocIndex.build([toggle, upper, *TRAINING])
    rows = task_report([problem], index, threshold=0.99, k=5)
    assert not rows[0]["look_alike"]  # the words differ too much
    behaviour_check([problem], rows, index, neighbours=5)
    assert rows[0]["look_alike"] and rows[0]["reason"] == "behaviour"
    assert rows[0]["solved_by"] == ["synthetic:toggle"]


def test_cli_writes_json_and_markdown(tmp_path: Path, capsys) -> None:
    from server.cli import main

    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in TRAINING))
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    out = tmp_path / "report" / "decontam.json"
    args = ["train", "decontam-report", "--data", str(data), "--eval", str(problems)]
    assert main([*args, "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    entry = report["summary"]["eval_sets"]["problems"]
    assert entry == {
        "problems": 2,
        "look_alikes": ["Fix/0"],
        "look_alike_count": 1,
        "by_text": 1,
    }
    assert [row["task_id"] for row in report["problems"]] == ["Fix/0", "Fix/1"]
    assert report["summary"]["flagged_sources"] == {"synthetic:digits_words": ["Fix/0"]}
    markdown = out.with_suffix(".md").read_text()
    assert "| Fix/0 |" in markdown and "1 of 2: Fix/0" in markdown
    strict = tmp_path / "strict.json"
    assert main([*args, "--out", str(strict), "--threshold", "0.99"]) == 0
    assert json.loads(strict.read_text())["summary"]["eval_sets"]["problems"]["look_alikes"] == []
    assert (
        main(["train", "decontam-report", "--data", str(tmp_path / "no.jsonl"), "--out", str(out)])
        == 2
    )
    capsys.readouterr()
