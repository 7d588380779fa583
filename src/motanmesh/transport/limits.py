"""What one Motan2 server port and each of its connections may cost, and the counters of
the limits hit.

Every limit protects the agent from one hostile or broken peer without touching the others:
a frame or metadata section over its limit, a malformed stream, a partial frame that does not
complete within ``read_timeout``, an idle connection (when ``idle_timeout`` is set) and a peer
that has not read its answers for ``write_timeout`` close *that* connection; a connection over
``max_connections`` is refused at once. A connection with ``max_pending_requests`` requests or
``max_pending_bytes`` request bytes unanswered, or with ``write_buffer_size`` bytes of answers
its peer has not read, is not read from until it falls below half of (a quarter of, for the
write buffer) the limit, so one connection holds at most about ``max_pending_bytes`` +
``write_buffer_size`` + the answers to its pending requests, plus one read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Final

from motanmesh.wire.decoder import DEFAULT_MAX_METADATA_ENTRIES, DEFAULT_MAX_METADATA_SIZE
from motanmesh.wire.frame import DEFAULT_MAX_CONTENT_LENGTH

__all__ = ["LIMIT_COUNTERS", "LimitError", "ServerLimits"]

#: the counters a server keeps, one per way a limit can be hit
LIMIT_COUNTERS: Final = (
    "connectionsRefused",  # over max_connections: refused at accept
    "frameTooLarge",  # a frame or metadata section over its limit: closed
    "malformed",  # undecodable input: closed
    "readTimeout",  # a partial frame older than read_timeout: closed
    "idleTimeout",  # nothing read for idle_timeout: closed
    "writeTimeout",  # answers not read by the peer for write_timeout: closed
    "pendingPaused",  # reading paused: max_pending_requests or max_pending_bytes reached
    "writePaused",  # reading paused: write_buffer_size of unread answers reached
)


class LimitError(ValueError):
    """A limit given in the configuration is not a usable value."""


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """The limits of one :class:`~motanmesh.transport.server.MotanServer` (times in seconds,
    ``None`` = no timeout)."""

    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH
    max_metadata_size: int = DEFAULT_MAX_METADATA_SIZE
    max_metadata_entries: int = DEFAULT_MAX_METADATA_ENTRIES
    max_connections: int = 10_000
    max_pending_requests: int = 1024
    max_pending_bytes: int = 4 * 1024 * 1024
    write_buffer_size: int = 4 * 1024 * 1024
    read_timeout: float | None = 30.0
    idle_timeout: float | None = None
    write_timeout: float | None = 60.0

    def with_(self, **changes: Any) -> ServerLimits:
        return replace(self, **changes)

    @classmethod
    def from_params(
        cls, params: Mapping[str, str], base: ServerLimits | None = None
    ) -> ServerLimits:
        """The limits named by the ``motan-agent`` keys in ``params`` (sizes in bytes, times in
        milliseconds, 0 = no timeout) over ``base`` (the defaults)."""
        limits = base or cls()
        changes: dict[str, Any] = {}
        for f in fields(cls):
            key = PARAM_KEYS[f.name]
            raw = params.get(key)
            if raw is None or str(raw).strip() == "":
                continue
            try:
                value = int(str(raw).strip())
            except ValueError:
                raise LimitError(f"{key}: not an integer: {raw!r}") from None
            if f.name.endswith("_timeout"):
                if value < 0:
                    raise LimitError(f"{key}: must be 0 (off) or a positive number of ms")
                changes[f.name] = value / 1000 if value else None
            else:
                if value <= 0:
                    raise LimitError(f"{key}: must be positive, got {value}")
                changes[f.name] = value
        return replace(limits, **changes) if changes else limits


#: the ``motan-agent`` key of each limit
PARAM_KEYS: Final = {
    "max_content_length": "maxContentLength",
    "max_metadata_size": "maxMetadataSize",
    "max_metadata_entries": "maxMetadataEntries",
    "max_connections": "maxConnections",
    "max_pending_requests": "maxPendingRequests",
    "max_pending_bytes": "maxPendingBytes",
    "write_buffer_size": "writeBufferSize",
    "read_timeout": "readTimeout",
    "idle_timeout": "idleTimeout",
    "write_timeout": "writeTimeout",
}
