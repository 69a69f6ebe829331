"""Where the bundled checkpoint lives, and how a user overrides it (light tier)."""

from __future__ import annotations

import os
from pathlib import Path

#: Name of the small checkpoint trained by ``docomplete train`` and committed to git.
BUNDLED_MODEL_NAME = "docomplete-py-small"
CHECKPOINTS_DIR = Path(__file__).resolve().parent / "checkpoints"


def default_model_path() -> Path:
    """The model used when none is given: ``$DOCOMPLETE_MODEL`` or the bundled checkpoint."""
    env = os.environ.get("DOCOMPLETE_MODEL")
    if env:
        return Path(env).expanduser()
    return CHECKPOINTS_DIR / BUNDLED_MODEL_NAME
