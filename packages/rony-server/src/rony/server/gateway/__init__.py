"""The HTTP + WebSocket gateway (aiohttp). Internal: the Edge owns it."""

from rony.server.gateway._gateway import Gateway

__all__ = ["Gateway"]
