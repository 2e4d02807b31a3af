"""A local orq.ai for tests, demos and `base_url: embedded`.

Written from the API contract alone: it imports nothing from the rest of orqsync, so a misreading
of the API cannot hide on both sides. Run it in process through `EmulatorTransport`, or on a
loopback socket with `EmulatorServer` / `serve`.
"""

from .config import EmulatorConfig, FaultConfig
from .core import Emulator
from .definitions import DefinitionsError
from .response import Response
from .server import EmulatorServer, serve
from .transport import AsyncEmulatorTransport, EmulatorTransport

__all__ = [
    "AsyncEmulatorTransport",
    "DefinitionsError",
    "Emulator",
    "EmulatorConfig",
    "EmulatorServer",
    "EmulatorTransport",
    "FaultConfig",
    "Response",
    "serve",
]
