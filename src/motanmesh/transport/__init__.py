"""The transport layer: asyncio Motan2 servers and multiplexed client endpoints.

Knows frames, not services: request-id matching, timeouts, heartbeats, reconnects,
backpressure and graceful close. Time goes through an injectable :class:`Clock`.
"""

from motanmesh.transport.clock import Clock, DeadlineBuckets, FakeClock, LoopClock, TimerHandle
from motanmesh.transport.endpoint import Endpoint, parse_address
from motanmesh.transport.errors import (
    ConnectError,
    ConnectionLost,
    EndpointUnavailable,
    RemoteError,
    RequestTimeout,
    TransportError,
    raise_for_status,
)
from motanmesh.transport.server import MotanServer, RequestHandler, Responder, ServerConnection

__all__ = [
    "Clock",
    "ConnectError",
    "ConnectionLost",
    "DeadlineBuckets",
    "Endpoint",
    "EndpointUnavailable",
    "FakeClock",
    "LoopClock",
    "MotanServer",
    "RemoteError",
    "RequestHandler",
    "RequestTimeout",
    "Responder",
    "ServerConnection",
    "TimerHandle",
    "TransportError",
    "parse_address",
    "raise_for_status",
]
