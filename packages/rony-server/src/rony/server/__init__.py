"""rony.server: the Rony edge server.

An ``App`` says what the service is (handler chains by constructor id, middleware, REST routes);
an ``Edge`` runs it: an HTTP + WebSocket gateway on one port, the dispatcher, and the embedded
store. ``rony serve module:app`` runs one from the command line; ``rony.server.testing`` has an
in-process test client and a pytest fixture.
"""

from rony.server._app import App, Handler, HandlerEntry, Hook, RestRoute
from rony.server._dispatch import Dispatcher, DispatchSettings
from rony.server._edge import Edge, edge_of
from rony.server._settings import EdgeSettings, load_settings

__version__ = "0.1.0"

__all__ = [
    "App",
    "DispatchSettings",
    "Dispatcher",
    "Edge",
    "EdgeSettings",
    "Handler",
    "HandlerEntry",
    "Hook",
    "RestRoute",
    "edge_of",
    "load_settings",
]
