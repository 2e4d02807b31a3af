"""A local orq.ai for tests, demos and `base_url: embedded`.

Written from the API contract alone: it imports nothing from the rest of orqsync, so a misreading
of the API cannot hide on both sides. Run it in process through `EmulatorTransport`, or on a
loopback socket with `EmulatorServer` / `serve`.

What keeps it from starting is one of four errors, each with a message fit for a user:
DefinitionsError (the definitions file, with file:line:column and a `hint`), EvaluationsError
(the evaluations file, the same shape, and a DefinitionsError too), StoreError (the database
file) and ListenError (the address to listen on).
"""

from .config import EmulatorConfig, FaultConfig
from .core import Emulator
from .definitions import DefinitionsError
from .evaluations import EvaluationsError
from .response import Response
from .server import EmulatorServer, ListenError, serve
from .store import StoreError
from .transport import AsyncEmulatorTransport, EmulatorTransport

__all__ = [
    "AsyncEmulatorTransport",
    "DefinitionsError",
    "Emulator",
    "EmulatorConfig",
    "EmulatorServer",
    "EmulatorTransport",
    "EvaluationsError",
    "FaultConfig",
    "ListenError",
    "Response",
    "StoreError",
    "serve",
]
