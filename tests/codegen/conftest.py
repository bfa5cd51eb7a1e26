"""Shared setup for the code generator's tests."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # so `tests.codegen._util` imports (pytest runs in importlib mode)
    sys.path.insert(0, str(ROOT))
