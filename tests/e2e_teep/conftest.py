"""End-to-end TEEP over HTTP tests reuse the TAM tests' helpers (keys, envelopes, a private CA, uvicorn in a thread,
DB snapshots): make ``tests/tam`` importable when this folder runs on its own, as it is when the whole suite runs."""

from __future__ import annotations

import sys
from pathlib import Path

TAM_TESTS = Path(__file__).resolve().parents[1] / "tam"
if str(TAM_TESTS) not in sys.path:
    sys.path.insert(0, str(TAM_TESTS))
