"""``python -m symgrad ...``: the same command line as the ``symgrad`` script (`symgrad.cli`)."""

from __future__ import annotations

import sys

from symgrad.cli import main

if __name__ == "__main__":
    sys.exit(main())
