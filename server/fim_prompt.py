"""Fill-in-the-middle for the editor: which template the backend's model takes, and the prompt.

``fimTemplate`` is ``auto`` (default), ``none``, a family name (``model/fim.py``) or a custom
string with ``{prefix}`` and ``{suffix}``. ``auto`` reads the special tokens of the model's
tokenizer for the embedded backend; for a server URL it asks ``GET /v1/models`` (docomplete's
own server says its template; other servers are matched by model id) and reads the tokenizer at
``modelPath`` when one is set. Without a template the left-to-right prompt is sent unchanged.

The prompt's prefix is the site's prompt and its suffix the document after the cursor; the
suffix gets at most a quarter of the context budget and both are cut at line boundaries (the
prefix from its top, the suffix from its end).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from model.fim import (
    FimTemplate,
    build_fim_prompt,
    fim_template_from_setting,
    find_fim_template,
    template_for_model_id,
    tokenizer_vocabulary,
)
from server.context import CompletionSite

logger = logging.getLogger(__name__)

SUFFIX_SHARE = 0.25
MODELS_TIMEOUT_S = 3.0


def _models_url(url: str) -> str:
    base = url.rstrip("/")
    return f"{base}/models" if base.endswith("/v1") else f"{base}/v1/models"


class FimLookupError(RuntimeError):
    """The model server could not be asked which model it serves (try again later)."""


def _template_from_server(url: str) -> FimTemplate | None:
    """The template ``GET /v1/models`` points at: a ``fim_template`` field, else the model id."""
    import httpx

    try:
        body = httpx.get(_models_url(url), timeout=MODELS_TIMEOUT_S).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise FimLookupError(f"{url} did not list its models ({exc})") from exc
    entries = body.get("data") if isinstance(body, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        named = entry.get("fim_template")
        if isinstance(named, str) and isinstance(
            choice := fim_template_from_setting(named), FimTemplate
        ):
            return choice
        if isinstance(entry.get("id"), str) and (found := template_for_model_id(entry["id"])):
            return found
    return None


def resolve_fim_template(
    setting: str, backend: tuple[str, ...], model_path: str | None
) -> FimTemplate | None:
    """The template to use for this backend (blocking: reads files, may ask the server).

    Raises :class:`FimLookupError` when ``auto`` needs a server that does not answer.
    """
    try:
        choice = fim_template_from_setting(setting)
    except ValueError as exc:
        logger.warning("%s; using the left-to-right prompt", exc)
        return None
    if choice != "auto":
        return choice if isinstance(choice, FimTemplate) else None
    if model_path or backend == ("embedded",):
        from model.paths import default_model_path

        directory = model_path or str(default_model_path())
        if (found := find_fim_template(tokenizer_vocabulary(directory))) is not None:
            return found
    if backend != ("embedded",):
        return _template_from_server(backend[0])
    return None


def _fit_lines(text: str, budget: int, count: Callable[[str], int], *, from_end: bool) -> str:
    """The longest run of whole lines of ``text`` within ``budget`` tokens: kept from its start
    (``from_end=True`` drops lines at the end) or from its end (drops lines at the top)."""
    if count(text) <= budget:
        return text
    lines = text.splitlines(keepends=True) if "\n" in text else [text]
    kept: list[str] = []
    used = 0
    for line in lines if from_end else reversed(lines):
        cost = count(line)
        if used + cost > budget:
            break
        kept.append(line)
        used += cost
    return "".join(kept if from_end else reversed(kept))


def build_site_fim_prompt(
    site: CompletionSite,
    template: FimTemplate,
    context_tokens: int,
    count: Callable[[str], int],
) -> str:
    """The fill-in-the-middle prompt for ``site`` within ``context_tokens``."""
    # When the prompt ends at the start of the cursor line, the whitespace typed before the
    # cursor belongs to the hole: the model writes the line's indentation itself.
    suffix = _fit_lines(
        site.text_after_cursor, int(context_tokens * SUFFIX_SHARE), count, from_end=True
    )
    prefix_budget = max(context_tokens - count(suffix), 0)
    prefix = site.prompt
    if count(prefix) > prefix_budget:
        own = site.prompt[len(site.module_context) :]
        context = _fit_lines(
            site.module_context, max(prefix_budget - count(own), 0), count, from_end=False
        )
        prefix = context + own
    return build_fim_prompt(prefix, suffix, template)
