"""Settings parsing, the completion cache (incl. typed-ahead reuse) and ranking."""

from model.protocol import Candidate
from server.ab import pick_arm, sampling_params
from server.cache import CompletionCache
from server.config import ServerConfig, config_as_json, parse_config
from server.postprocess import CleanCandidate
from server.ranking import DoctestOutcome, RankedCandidate, rank_candidates


def test_camel_case_settings_are_applied():
    config, problems = parse_config(
        {
            "backend": ["http://127.0.0.1:9000", "http://127.0.0.1:9001"],
            "n": 6,
            "temperature": 0.2,
            "topP": 0.9,
            "maxTokens": 64,
            "doctestFilter": False,
            "doctestTimeout": 1.5,
            "abArms": [0.2, {"name": "hot", "temperature": 1.0}],
            "logLevel": "DEBUG",
        }
    )
    assert problems == []
    assert config.backend == ("http://127.0.0.1:9000", "http://127.0.0.1:9001")
    assert (config.n, config.temperature, config.top_p, config.max_tokens) == (6, 0.2, 0.9, 64)
    assert config.doctest_filter is False and config.doctest_timeout == 1.5
    assert config.ab_arms == (
        {"temperature": 0.2, "name": "arm0"},
        {"name": "hot", "temperature": 1.0},
    )
    assert config.log_level == "debug"
    assert config_as_json(config)["topP"] == 0.9


def test_invalid_settings_fall_back_to_defaults_with_one_message_each():
    config, problems = parse_config(
        {"n": 0, "temperature": "hot", "backend": "ftp://x", "topP": 1.0, "bogus": 1}
    )
    defaults = ServerConfig()
    assert (config.n, config.temperature, config.backend) == (
        defaults.n,
        defaults.temperature,
        defaults.backend,
    )
    assert config.top_p == 1.0
    assert len(problems) == 4
    assert any("n=0" in p and "default 4" in p for p in problems)
    assert any("bogus" in p for p in problems)
    assert parse_config([]) == (ServerConfig(), [])  # Neovim's empty table
    _, problems = parse_config(["not", "an", "object"])
    assert problems and "must be an object" in problems[0]


def test_nested_section_and_partial_updates_keep_earlier_values():
    first, _ = parse_config({"docomplete": {"n": 2}})
    second, _ = parse_config({"temperature": 0.1}, first)
    assert (second.n, second.temperature) == (2, 0.1)


def test_arm_choice_is_deterministic_and_overrides_temperature():
    config, _ = parse_config({"abArms": [0.2, 0.8]})
    chosen = {pick_arm(config, f"prompt {i}")["name"] for i in range(20)}  # type: ignore[index]
    assert chosen == {"arm0", "arm1"}
    arm = pick_arm(config, "same prompt")
    assert arm == pick_arm(config, "same prompt")
    assert arm is not None
    assert sampling_params(config, arm).temperature == arm["temperature"]


def ranked(text: str, passed: int = 0, mean: float = -1.0) -> RankedCandidate:
    return RankedCandidate(
        text, "def f():\n" + text, mean, mean * 3, "stop", DoctestOutcome(passed, 2, "x")
    )


def test_cache_exact_hit_expiry_and_lru():
    now = [0.0]
    cache = CompletionCache(max_entries=2, ttl_s=10, clock=lambda: now[0])
    cache.put("a", "prompt a", [ranked("    return 1")], None)
    cache.put("b", "prompt b", [ranked("    return 2")], None)
    assert cache.get("a") is not None
    cache.put("c", "prompt c", [ranked("    return 3")], None)  # evicts b (least recent)
    assert cache.get("b") is None and cache.get("a") is not None
    now[0] = 11.0
    assert cache.get("a") is None


def test_typed_ahead_serves_the_rest_of_matching_candidates():
    cache = CompletionCache()
    cache.put(
        "k",
        "def f():\n",
        [ranked("    return sorted(x)", 2), ranked("    return list(x)", 1)],
        "arm0",
    )
    entry = cache.typed_ahead("def f():\n    return so", lambda key: True)
    assert entry is not None
    assert [r.continuation for r in entry.ranked] == ["rted(x)"]
    assert entry.arm == "arm0"
    assert cache.typed_ahead("def f():\n    return sorted(x)", lambda key: True) is None
    assert cache.typed_ahead("def f():\n    yield", lambda key: True) is None
    assert cache.typed_ahead("def f():\n    return so", lambda key: False) is None


def clean(text: str, mean: float) -> CleanCandidate:
    return CleanCandidate(text, "def f():\n" + text, Candidate(text, (mean, mean), "stop"))


def test_ranking_prefers_passing_examples_then_mean_logprob():
    candidates = [clean("a", -0.1), clean("b", -0.9), clean("c", -0.5), clean("d", -0.2)]
    outcomes = [
        DoctestOutcome(0, 2, "failed"),
        DoctestOutcome(2, 2, "passed"),
        DoctestOutcome(2, 2, "passed"),
        DoctestOutcome(1, 2, "failed"),
    ]
    assert [r.continuation for r in rank_candidates(candidates, outcomes)] == ["c", "b", "d", "a"]
    no_examples = [DoctestOutcome() for _ in candidates]
    assert [r.continuation for r in rank_candidates(candidates, no_examples)] == [
        "a",
        "d",
        "c",
        "b",
    ]
