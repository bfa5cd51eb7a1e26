"""The event loop's clock as one C call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["loop_clock"]


def loop_clock(loop: asyncio.AbstractEventLoop) -> Callable[[], float]:
    """``loop.time`` as one C call: asyncio's own ``BaseEventLoop.time`` is ``time.monotonic()``
    behind a Python frame, a measurable share of a small request when the server reads it per
    frame and per reply, and the client several times per call. Another loop (uvloop) keeps
    its own ``time``."""
    if getattr(type(loop), "time", None) is asyncio.BaseEventLoop.time:
        return time.monotonic
    return loop.time
