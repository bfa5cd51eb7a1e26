"""The event loop's clock as one C call."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # (rony.core imports no asyncio: it does no I/O)
    from asyncio import AbstractEventLoop

__all__ = ["loop_clock"]


def loop_clock(loop: AbstractEventLoop) -> Callable[[], float]:
    """``loop.time`` as one C call: asyncio's own ``BaseEventLoop.time`` is ``time.monotonic()``
    behind a Python frame, a measurable share of a small request when the server reads it per
    frame and per reply, and the client several times per call. Another loop (uvloop) keeps
    its own ``time``."""
    from asyncio import BaseEventLoop  # (the caller runs a loop: asyncio is imported already)

    if getattr(type(loop), "time", None) is BaseEventLoop.time:
        return time.monotonic
    return loop.time
