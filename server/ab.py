"""A/B arms: which arm a request gets, and the sampling parameters that arm sets.

Assignment is a seeded hash, so it is sticky without any stored state: per ``prompt`` (the
same prompt always gets the same arm), per ``document`` (every request in a file) or per
``session`` (every request of one server process). Arm weights set the traffic split.
"""

from __future__ import annotations

import hashlib
from typing import Any

from model.protocol import SamplingParams
from server.config import ServerConfig
from server.postprocess import STOP_SEQUENCES


def assignment_key(config: ServerConfig, *, prompt: str, uri: str, session: str) -> str:
    """What stays fixed while the arm must stay fixed."""
    if config.ab_assignment == "document":
        return f"document\0{uri}"
    if config.ab_assignment == "session":
        return f"session\0{session}"
    return f"prompt\0{prompt}"


def pick_arm(
    config: ServerConfig, prompt: str, *, uri: str = "", session: str = ""
) -> dict[str, Any] | None:
    """The arm for this request (None without arms): weighted, deterministic given the seed."""
    arms = config.ab_arms
    if not arms:
        return None
    key = assignment_key(config, prompt=prompt, uri=uri, session=session)
    digest = hashlib.sha256(f"{config.ab_seed}\0{key}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    weights = [float(arm.get("weight", 1.0)) for arm in arms]
    total = sum(weights)
    reached = 0.0
    for arm, weight in zip(arms, weights, strict=True):
        reached += weight / total
        if weight > 0 and point < reached:
            return arm
    return next(arm for arm, weight in zip(arms[::-1], weights[::-1], strict=True) if weight > 0)


def arm_index(config: ServerConfig, arm: dict[str, Any] | None) -> int | None:
    """Position of ``arm`` in ``abArms`` (the report lists arms in this order)."""
    if arm is None:
        return None
    names = [item["name"] for item in config.ab_arms]
    return names.index(arm["name"]) if arm["name"] in names else None


def sampling_params(config: ServerConfig, arm: dict[str, Any] | None) -> SamplingParams:
    """The settings' sampling parameters, with whatever the arm overrides."""
    arm = arm or {}
    return SamplingParams(
        n=int(arm.get("n", config.n)),
        temperature=float(arm.get("temperature", config.temperature)),
        top_p=float(arm.get("topP", config.top_p)),
        max_tokens=int(arm.get("maxTokens", config.max_tokens)),
        stop=STOP_SEQUENCES,
    )
