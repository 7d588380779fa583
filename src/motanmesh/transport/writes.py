"""Handing the frames written during one loop iteration to the transport.

Small frames are joined, so the kernel gets them in one ``send``; once the batch is large
(forwarded bodies of tens of KB and more), joining would copy every body once more and make
a buffer of several MB that the allocator maps and unmaps per batch, so the frames are handed
over as they are (``writelines``: one vectored ``send`` on uvloop, no copy).
"""

from __future__ import annotations

import asyncio
from typing import Final

__all__ = ["JOIN_LIMIT", "write_batch"]

#: batches up to this many bytes are joined into one buffer
JOIN_LIMIT: Final = 64 * 1024


def write_batch(transport: asyncio.WriteTransport, batch: list[bytes]) -> None:
    """Write ``batch`` (not empty) to ``transport``; the caller may clear it afterwards."""
    if len(batch) == 1:
        transport.write(batch[0])
    elif sum(map(len, batch)) <= JOIN_LIMIT:
        transport.write(b"".join(batch))
    else:
        transport.writelines(batch)
