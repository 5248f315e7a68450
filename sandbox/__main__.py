"""``python -m sandbox``: run the sandbox server."""

from __future__ import annotations

from sandbox.server import main

if __name__ == "__main__":
    raise SystemExit(main())
