"""A/B arm settings, weighted sticky assignment, and the retention measure."""

from __future__ import annotations

from collections import Counter

from server.ab import pick_arm, sampling_params
from server.config import ServerConfig, parse_config
from server.engagement import kept_fraction


def test_arms_may_set_weight_and_sampling_keys():
    config, problems = parse_config(
        {
            "abArms": [
                {"name": "cold", "temperature": 0.2, "n": 2, "maxTokens": 64, "weight": 3},
                {"name": "hot", "temperature": 1.0, "topP": 0.9},
            ],
            "abAssignment": "Document",
            "abSeed": 42,
            "retentionDelays": [120, 30],
            "dismissTimeout": 10,
        }
    )
    assert problems == []
    assert config.ab_assignment == "document" and config.ab_seed == "42"
    assert config.retention_delays == (30.0, 120.0) and config.dismiss_timeout == 10.0
    cold, hot = config.ab_arms
    params = sampling_params(config, cold)
    assert (params.n, params.temperature, params.max_tokens, params.top_p) == (2, 0.2, 64, 0.95)
    params = sampling_params(config, hot)
    assert (params.n, params.temperature, params.max_tokens, params.top_p) == (4, 1.0, 128, 0.9)


def test_invalid_arms_turn_the_experiment_off_with_one_message():
    cases = {
        "arm 1: weight": [0.2, {"name": "x", "weight": -1}],
        "arm 0: n": [{"n": 0}],
        "arm 0: unknown key(s) temp": [{"temp": 0.3}],
        "(a repeated)": [{"name": "a"}, {"name": "a", "temperature": 1.0}],
        "weight above 0": [{"weight": 0}, {"weight": 0, "temperature": 1.0}],
        "arm 0: temperature": [3.5],
        "expected a list": "0.2,0.8",
    }
    for fragment, arms in cases.items():
        config, problems = parse_config({"abArms": arms, "n": 2})
        assert config.ab_arms == () and config.n == 2, fragment
        assert len(problems) == 1 and fragment in problems[0], (fragment, problems)
        assert "using the default []" in problems[0]
    config, problems = parse_config({"abAssignment": "user", "retentionDelays": []})
    assert (config.ab_assignment, config.retention_delays) == ("prompt", (30.0, 120.0))
    assert len(problems) == 2 and "prompt, document, session" in problems[0]


def test_weights_split_traffic_and_zero_weight_arms_get_none():
    config, _ = parse_config(
        {
            "abArms": [
                {"name": "a", "weight": 3},
                {"name": "b", "weight": 1},
                {"name": "off", "weight": 0},
            ]
        }
    )
    counts = Counter(pick_arm(config, f"prompt {i}")["name"] for i in range(4000))  # type: ignore[index]
    assert counts["off"] == 0
    assert 0.71 < counts["a"] / 4000 < 0.79


def test_assignment_is_sticky_per_document_and_session_and_follows_the_seed():
    base, _ = parse_config({"abArms": [0.2, 0.8], "abAssignment": "document"})
    uri = "file:///x.py"
    arms = {pick_arm(base, f"prompt {i}", uri=uri)["name"] for i in range(50)}  # type: ignore[index]
    assert len(arms) == 1
    spread = {pick_arm(base, "p", uri=f"file:///{i}.py")["name"] for i in range(50)}  # type: ignore[index]
    assert spread == {"arm0", "arm1"}
    session, _ = parse_config({"abAssignment": "session"}, base)
    in_session = {
        pick_arm(session, f"p{i}", uri=f"file:///{i}.py", session="s1")["name"]  # type: ignore[index]
        for i in range(50)
    }
    assert len(in_session) == 1
    # Another seed reshuffles documents (re-randomising a team's experiment).
    reseeded, _ = parse_config({"abSeed": "second run"}, base)
    moved = sum(
        pick_arm(base, "p", uri=f"file:///{i}.py") != pick_arm(reseeded, "p", uri=f"file:///{i}.py")
        for i in range(100)
    )
    assert 25 < moved < 75
    assert pick_arm(ServerConfig(), "p") is None


def test_kept_fraction_ignores_indentation_and_notices_edits():
    accepted = "    words = sentence.split()\n\n    return ' '.join(reversed(words))"
    document = (
        "def f(sentence):\n        words = sentence.split()\n"
        "        return ' '.join(reversed(words))\n"
    )
    assert kept_fraction(accepted, document) == 1.0
    assert kept_fraction(accepted, document.replace("reversed(words)", "words")) == 0.5
    assert kept_fraction(accepted, "def f(sentence):\n    pass\n") == 0.0
