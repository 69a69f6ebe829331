"""Project-wide test settings: nothing may reach a model hub, nothing writes to the real home."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

# Servers started by tests write telemetry to the state directory by default: keep it private.
_STATE_HOME = tempfile.mkdtemp(prefix="docomplete-test-state-")
os.environ["XDG_STATE_HOME"] = _STATE_HOME
atexit.register(shutil.rmtree, _STATE_HOME, ignore_errors=True)
