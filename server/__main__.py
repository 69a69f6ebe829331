"""``python -m server …`` = the ``docomplete`` command (handy where the script is not on PATH)."""

from server.cli import main

raise SystemExit(main())
