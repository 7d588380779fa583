"""Where the connections' reads go.

Server and client connections are ``asyncio.BufferedProtocol``\\ s: the loop reads into the
buffer their :class:`~motanmesh.wire.decoder.FrameDecoder` hands out. Between large frames
that is one buffer shared by every connection of the thread (:func:`shared_read_buffer`):
a read is decoded, and what it leaves of an incomplete frame copied out, before the loop
makes the next read, so nothing refers to the shared buffer afterwards and a connection
holds no read buffer of its own while idle. A large frame is read into a buffer of its own
size, dropped once the frame is decoded (``motanmesh.wire.decoder.LARGE_FRAME``).
"""

from __future__ import annotations

import threading
from typing import Protocol

from motanmesh.wire.decoder import READ_BUFFER_SIZE

__all__ = ["GetBuffer", "shared_read_buffer"]


class GetBuffer(Protocol):
    """``asyncio.BufferedProtocol.get_buffer``, as a connection's attribute (the decoder's
    bound method)."""

    def __call__(self, sizehint: int) -> memoryview: ...


_local = threading.local()


def shared_read_buffer() -> bytearray:
    """The read buffer shared by the connections of the calling thread (each event loop
    runs in one thread, and reads one socket at a time)."""
    buf: bytearray | None = getattr(_local, "buffer", None)
    if buf is None:
        buf = _local.buffer = bytearray(READ_BUFFER_SIZE)
    return buf
