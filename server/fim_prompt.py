"""Fill-in-the-middle for the editor: which template the backend's model takes, and the prompt.

``fimTemplate`` is ``auto`` (default), ``none``, a family name (``model/fim.py``) or a custom
string with ``{prefix}`` and ``{suffix}``. ``auto`` reads the special tokens of the model's
tokenizer for the embedded backend; for a server URL it asks ``GET /v1/models`` (docomplete's
own server says its template; other servers are matched by model id) and reads the tokenizer at
``modelPath`` when one is set. A local model directory may decline ``auto`` in its
``docomplete.json`` (``"fim_auto": false`` with a reason): its FIM markers exist but it fills in
worse than it completes left to right (the bundled checkpoint, see its model card); a named
``fimTemplate`` still uses them. ``docomplete serve`` passes that on in ``GET /v1/models``.
Without a template the left-to-right prompt is sent unchanged.

The prompt's prefix is the site's prompt and its suffix the document after the cursor; the
suffix gets at most a quarter of the context budget and both are cut at line boundaries (the
prefix from its top, the suffix from its end).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from model.fim import FimLookupError, FimTemplate, build_fim_prompt, fim_auto_declined
from model.fim import resolve_fim_template as resolve_model_fim_template
from server.context import CompletionSite

logger = logging.getLogger(__name__)

SUFFIX_SHARE = 0.25

__all__ = ["FimLookupError", "build_site_fim_prompt", "resolve_fim_template"]


def resolve_fim_template(
    setting: str, backend: tuple[str, ...], model_path: str | None
) -> FimTemplate | None:
    """The template to use for this backend (blocking: reads files, may ask the server); an
    invalid setting is logged and means the left-to-right prompt.

    Raises :class:`FimLookupError` when ``auto`` needs a server that does not answer.
    """
    if setting.strip().lower() == "auto":
        reason = model_declines_fim(backend, model_path)
        if reason is not None:
            logger.info("fill-in-the-middle not used for this model: %s", reason)
            return None
    try:
        return resolve_model_fim_template(setting, backend, model_path)
    except ValueError as exc:
        logger.warning("%s; using the left-to-right prompt", exc)
        return None


def model_declines_fim(backend: tuple[str, ...], model_path: str | None) -> str | None:
    """The reason a local model directory gives in ``docomplete.json`` for not being prompted
    with FIM under ``fimTemplate: auto``, or None."""
    directory: str | Path | None = model_path
    if directory is None and tuple(backend) == ("embedded",):
        from model.paths import default_model_path

        directory = default_model_path()
    return fim_auto_declined(directory) if directory is not None else None


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
