"""Server settings: parsed from camelCase JSON (initializationOptions, workspace/configuration).

An invalid value never stops the server: it is reported (the caller shows it to the user with
``window/showMessage``) and its default is used instead.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The ``workspace/configuration`` section the server asks for.
CONFIG_SECTION = "docomplete"

_LOG_LEVELS = ("error", "warning", "info", "debug")


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Every user-facing setting, with its default; field names are the snake_case form."""

    backend: tuple[str, ...] = ("embedded",)
    model_path: str | None = None
    #: The ``model`` field sent to a model server (vLLM needs one); None: the server's first id.
    model: str | None = None
    n: int = 4
    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = 128
    doctest_filter: bool = True
    doctest_timeout: float = 3.0
    show_failing: str = "picker"
    sandbox_site_packages: str = "auto"
    fim_template: str = "auto"
    request_timeout: float = 20.0
    context_tokens: int = 768
    ab_arms: tuple[dict[str, Any], ...] = ()
    ab_assignment: str = "prompt"
    ab_seed: str = "docomplete"
    retention_delays: tuple[float, ...] = (30.0, 120.0)
    dismiss_timeout: float = 60.0
    log_level: str = "info"
    telemetry_file: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)


def camel_case(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _as_backend(value: Any) -> tuple[str, ...]:
    specs = [value] if isinstance(value, str) else value
    if not isinstance(specs, list | tuple) or not specs:
        raise ValueError('expected "embedded" or a list of http(s):// URLs')
    cleaned: list[str] = []
    for spec in specs:
        if not isinstance(spec, str) or not spec.strip():
            raise ValueError('expected "embedded" or a list of http(s):// URLs')
        spec = spec.strip()
        if spec != "embedded" and not spec.startswith(("http://", "https://")):
            raise ValueError(f'{spec!r} is neither "embedded" nor an http(s):// URL')
        cleaned.append(spec)
    if "embedded" in cleaned and len(cleaned) > 1:
        raise ValueError('"embedded" cannot be mixed with URLs')
    return tuple(cleaned)


def _as_int(low: int, high: int):
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise ValueError(f"expected a whole number between {low} and {high}")
        if not low <= int(value) <= high:
            raise ValueError(f"expected a whole number between {low} and {high}")
        return int(value)

    return convert


def _as_float(low: float, high: float, *, low_open: bool = False):
    def convert(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number between {low} and {high}")
        number = float(value)
        too_low = number <= low if low_open else number < low
        if not math.isfinite(number) or too_low or number > high:
            raise ValueError(f"expected a number between {low} and {high}")
        return number

    return convert


def _as_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


def _as_optional_path(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError("expected a path (string)")
    return value


def _as_choice(*choices: str):
    def convert(value: Any) -> str:
        if not isinstance(value, str) or value.lower() not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return value.lower()

    return convert


def _as_site_packages(value: Any) -> str:
    """``auto`` (the workspace's .venv/venv or $VIRTUAL_ENV), ``off``, or a directory."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError('expected "auto", "off" or the path of a site-packages directory')
    value = value.strip()
    return value.lower() if value.lower() in ("auto", "off") else value


def _as_fim_template(value: Any) -> str:
    """``auto``, ``none``, a family name (model/fim.py) or a string with {prefix} and {suffix}."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError('expected "auto", "none", a model family or a template string')
    if "{prefix}" in value or "{suffix}" in value:
        if "{prefix}" not in value or "{suffix}" not in value:
            raise ValueError("a custom template needs both {prefix} and {suffix}")
        return value
    from model.fim import fim_setting_names

    names = fim_setting_names()
    if value.strip().lower() not in names:
        raise ValueError(f"expected one of {', '.join(names)} or a string with {{prefix}}")
    return value.strip().lower()


def _as_log_level(value: Any) -> str:
    if not isinstance(value, str) or value.lower() not in _LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(_LOG_LEVELS)}")
    return value.lower()


_ARM_KEYS = {
    "temperature": _as_float(0.0, 2.0),
    "topP": _as_float(0.0, 1.0, low_open=True),
    "n": _as_int(1, 32),
    "maxTokens": _as_int(1, 2048),
    "weight": _as_float(0.0, 1e6),
}
_ARM_HELP = "a list of temperatures or {name, weight, temperature, topP, n, maxTokens} objects"
AB_ASSIGNMENTS = ("prompt", "document", "session")


def _as_arms(value: Any) -> tuple[dict[str, Any], ...]:
    """A/B arms: numbers are temperatures; objects may set a name, a weight and sampling keys.

    Any bad arm rejects the whole list (the caller then runs without arms): a half-configured
    experiment would bias the comparison.
    """
    if not isinstance(value, list | tuple):
        raise ValueError(f"expected {_ARM_HELP}")
    arms: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        if isinstance(item, int | float) and not isinstance(item, bool):
            try:
                arm: dict[str, Any] = {"temperature": _ARM_KEYS["temperature"](item)}
            except ValueError as exc:
                raise ValueError(f"arm {index}: temperature {exc}") from None
        elif isinstance(item, Mapping):
            unknown = set(item) - {"name", *_ARM_KEYS}
            if unknown:
                raise ValueError(f"arm {index}: unknown key(s) {', '.join(sorted(unknown))}")
            arm = {}
            for key in _ARM_KEYS:
                if key in item:
                    try:
                        arm[key] = _ARM_KEYS[key](item[key])
                    except ValueError as exc:
                        raise ValueError(f"arm {index}: {key} {exc}") from None
            if "name" in item:
                if not isinstance(item["name"], str) or not item["name"].strip():
                    raise ValueError(f"arm {index}: name must be a non-empty string")
                arm["name"] = item["name"].strip()
        else:
            raise ValueError(f"arm {index}: expected a number or an object")
        arm.setdefault("name", f"arm{index}")
        arms.append(arm)
    names = [arm["name"] for arm in arms]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"arm names must differ ({', '.join(duplicates)} repeated)")
    if arms and not any(arm.get("weight", 1.0) > 0 for arm in arms):
        raise ValueError("at least one arm needs a weight above 0")
    return tuple(arms)


def _as_assignment(value: Any) -> str:
    if not isinstance(value, str) or value.lower() not in AB_ASSIGNMENTS:
        raise ValueError(f"expected one of {', '.join(AB_ASSIGNMENTS)}")
    return value.lower()


def _as_seed(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("expected a whole number or a string")
    return str(value)


def _as_optional_model_name(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 512 or "\n" in value:
        raise ValueError("expected the model name the server serves, e.g. Qwen/Qwen2.5-Coder-1.5B")
    return value.strip()


def _as_delays(value: Any) -> tuple[float, ...]:
    check = _as_float(0.0, 86400.0, low_open=True)
    if not isinstance(value, list | tuple) or not 1 <= len(value) <= 4:
        raise ValueError("expected a list of one to four delays in seconds, e.g. [30, 120]")
    return tuple(sorted(check(item) for item in value))


_CONVERTERS = {
    "backend": _as_backend,
    "model_path": _as_optional_path,
    "model": _as_optional_model_name,
    "n": _as_int(1, 32),
    "temperature": _as_float(0.0, 2.0),
    "top_p": _as_float(0.0, 1.0, low_open=True),
    "max_tokens": _as_int(1, 2048),
    "doctest_filter": _as_bool,
    "doctest_timeout": _as_float(0.0, 60.0, low_open=True),
    "show_failing": _as_choice("picker", "never", "always"),
    "sandbox_site_packages": _as_site_packages,
    "fim_template": _as_fim_template,
    "request_timeout": _as_float(0.0, 600.0, low_open=True),
    "context_tokens": _as_int(0, 16384),
    "ab_arms": _as_arms,
    "ab_assignment": _as_assignment,
    "ab_seed": _as_seed,
    "retention_delays": _as_delays,
    "dismiss_timeout": _as_float(0.0, 3600.0, low_open=True),
    "log_level": _as_log_level,
    "telemetry_file": _as_optional_path,
}


def parse_config(options: Any, base: ServerConfig | None = None) -> tuple[ServerConfig, list[str]]:
    """Overlay camelCase ``options`` on ``base`` (defaults if None).

    Returns the new config and one message per rejected setting; a rejected setting keeps its
    default. Unknown keys are kept in ``extra`` and reported, so a typo is noticed.
    """
    base = base or ServerConfig()
    problems: list[str] = []
    if options is None or (isinstance(options, list | tuple) and not options):
        # Neovim encodes an empty Lua table as [], meaning "no settings".
        return base, problems
    if not isinstance(options, Mapping):
        return base, [f"docomplete settings must be an object, got {type(options).__name__}"]
    if isinstance(options.get(CONFIG_SECTION), Mapping):
        # Some clients send {"docomplete": {...}}; accept both shapes.
        options = options[CONFIG_SECTION]
    defaults = ServerConfig()
    changes: dict[str, Any] = {}
    extra: dict[str, Any] = dict(base.extra)
    for key, value in options.items():
        name = snake_case(str(key))
        converter = _CONVERTERS.get(name)
        if converter is None:
            extra[str(key)] = value
            problems.append(f"docomplete: unknown setting {key!r} ignored")
            continue
        if value is None:
            changes[name] = getattr(defaults, name)
            continue
        try:
            changes[name] = converter(value)
        except ValueError as exc:
            changes[name] = getattr(defaults, name)
            problems.append(
                f"docomplete: invalid setting {camel_case(name)}={value!r}: {exc}; "
                f"using the default {_show_default(getattr(defaults, name))}"
            )
    return dataclasses.replace(base, **changes, extra=extra), problems


def _show_default(value: Any) -> str:
    if isinstance(value, tuple):
        return repr(list(value))
    return repr(value)


def config_as_json(config: ServerConfig) -> dict[str, Any]:
    """The settings as camelCase JSON (what ``docomplete/candidates`` reports back)."""
    out: dict[str, Any] = {}
    for item in dataclasses.fields(config):
        if item.name == "extra":
            continue
        value = getattr(config, item.name)
        out[camel_case(item.name)] = list(value) if isinstance(value, tuple) else value
    return out
