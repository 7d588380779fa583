"""The access log: one line per call, written by a background thread to
``<log_dir>/motanmesh-access.log`` in the Go agent's format.

A call appends its line's message (a string: no object the garbage collector tracks) to a
bounded buffer (``log_buffer_size``, default 5000); when it is full the line is dropped and
counted in :attr:`AccessLogWriter.discarded` (the Go agent's ``accesslog_discard_count``). A
request never waits for the disk. The writer thread wakes every :data:`FLUSH_INTERVAL`
seconds and appends what is buffered to the file in one write (every line of that batch
with the batch's time stamp); with
``rotate_per_hour`` (default on) the file is renamed to ``motanmesh-access-YYYYMMDD-HH.log``
when the hour changes, as the Go agent does.

Line formats (what the Go agent's zap console encoder writes):

* plain: ``<time>\\t<filterName>|<role>|<requestID>|...|<upstreamCode>\\n``
* structured (``log_structured: true``): ``<time>\\t\\t{"filterName": "...", ...}\\n``

``<time>`` is ``2006-01-02T15:04:05.000Z0700`` in local time.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import IO, Final

__all__ = [
    "ACCESS_LOG_FILE",
    "ACCESS_LOG_SERVICE",
    "DEFAULT_BUFFER_SIZE",
    "AccessEntry",
    "AccessLogWriter",
    "format_plain",
    "format_structured",
    "format_time",
]

log = logging.getLogger("motanmesh.filters.accesslog")

#: the shared-service name in :class:`~motanmesh.filters.base.FilterContext`
ACCESS_LOG_SERVICE: Final = "accessLog"
ACCESS_LOG_FILE: Final = "motanmesh-access.log"
DEFAULT_BUFFER_SIZE: Final = 5000
FLUSH_INTERVAL: Final = 0.05

#: (filterName, role, requestID, service, method, desc, remoteAddress, reqSize, resSize,
#: bizTime, totalTime, success, responseCode, exception, upstreamCode)
AccessEntry = tuple[str, str, int, str, str, str, str, int, int, int, int, bool, str, str, str]

_STRUCTURED_KEYS: Final = (
    "filterName",
    "role",
    "requestID",
    "service",
    "method",
    "desc",
    "remoteAddress",
    "reqSize",
    "resSize",
    "bizTime",
    "totalTime",
    "success",
    "responseCode",
    "exception",
    "upstreamCode",
)


def format_time(now: float) -> str:
    """``2006-01-02T15:04:05.000Z0700`` (zap's ISO8601 encoder) in local time."""
    t = time.localtime(now)
    millis = int(now * 1000) % 1000
    offset = t.tm_gmtoff
    if offset == 0:
        zone = "Z"
    else:
        sign = "+" if offset > 0 else "-"
        offset = abs(offset)
        zone = f"{sign}{offset // 3600:02d}{offset % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{millis:03d}{zone}"


def format_plain(entry: AccessEntry) -> str:
    """The ``|``-separated message of one entry (without time and newline)."""
    return (
        f"{entry[0]}|{entry[1]}|{entry[2]}|{entry[3]}|{entry[4]}|{entry[5]}|{entry[6]}|"
        f"{entry[7]}|{entry[8]}|{entry[9]}|{entry[10]}|{'true' if entry[11] else 'false'}|"
        f"{entry[12]}|{entry[13]}|{entry[14]}"
    )


def _zap_string(value: str) -> str:
    """A JSON string as zap's encoder writes it: only ``"``, ``\\`` and control characters
    are escaped (``<``, ``>``, ``&`` stay as they are)."""
    out: list[str] = ['"']
    for ch in value:
        code = ord(ch)
        if ch in {'"', "\\"}:
            out.append("\\" + ch)
        elif code >= 0x20:
            out.append(ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        else:
            out.append(f"\\u00{code:02x}")
    out.append('"')
    return "".join(out)


def format_structured(entry: AccessEntry) -> str:
    """The JSON object of one entry as zap's console encoder writes fields (``"k": v``,
    separated by ``", "``)."""
    parts: list[str] = []
    for key, value in zip(_STRUCTURED_KEYS, entry, strict=True):
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int):
            text = str(value)
        else:
            text = _zap_string(str(value))
        parts.append(f'"{key}": {text}')
    return "{" + ", ".join(parts) + "}"


class AccessLogWriter:
    """The agent's access log (one per agent, shared by every ``accessLog`` and
    ``clusterAccessLog`` filter)."""

    def __init__(
        self,
        log_dir: str = ".",
        *,
        structured: bool = False,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        rotate_per_hour: bool = True,
        file_name: str = ACCESS_LOG_FILE,
    ) -> None:
        #: ``stdout`` writes the lines to the standard output
        self.to_stdout = log_dir == "stdout"
        self.path = Path(log_dir or ".") / file_name
        self.structured = structured
        self.rotate_per_hour = rotate_per_hour
        self.buffer_size = max(1, buffer_size)
        #: switched by ``/logConfig/set?access=``; off: calls add nothing
        self.enabled = True
        #: entries dropped because the buffer was full (``accesslog_discard_count``), since
        #: start; :meth:`take_discarded` reads and resets the per-period count
        self.discarded = 0
        #: entries written
        self.written = 0
        self._period_discarded = 0
        #: the messages of the lines to write (without time stamp and newline)
        self._lines: collections.deque[str] = collections.deque()
        self._file: IO[bytes] | None = None
        self._hour = ""
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ request path

    def full(self) -> bool:
        """Whether the buffer is full; if so, one more line is counted as dropped (a caller
        asks before it makes the line)."""
        if len(self._lines) < self.buffer_size:
            return False
        self.discarded += 1
        self._period_discarded += 1
        return True

    def add_line(self, text: str) -> None:
        """Queue one line's message (``format_plain`` or ``format_structured`` of its
        fields, as :attr:`structured` says) once :meth:`full` has said there is room (the
        caller asks before it makes the line, so the buffer is checked once per line);
        never blocks."""
        self._lines.append(text)
        if self._writer is None:
            self._start()

    def take_discarded(self) -> int:
        """Entries dropped since the last call (what the Go agent samples each period)."""
        count = self._period_discarded
        self._period_discarded = 0
        return count

    # ------------------------------------------------------------------ writer thread

    def _start(self) -> None:
        with self._lock:
            if self._writer is not None or self._stop.is_set():
                return
            self._writer = threading.Thread(
                target=self._run, name="motanmesh-access-log", daemon=True
            )
            self._writer.start()

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL):
            self.flush()
        self.flush()
        self._close_file()

    def flush(self) -> None:
        """Write what is buffered (the writer thread calls this; safe from any thread).

        One batch: the lines queued when it starts, all with the time stamp of the batch (the
        writer wakes every :data:`FLUSH_INTERVAL`), joined and written at once."""
        lines = self._lines
        if not lines:
            return
        with self._lock:
            n = len(lines)  # what is queued meanwhile goes in the next batch
            if not n:
                return
            prefix = format_time(time.time()) + ("\t\t" if self.structured else "\t")
            parts: list[str] = []
            count = n
            while n:
                n -= 1
                parts.append(prefix)
                parts.append(lines.popleft())
                parts.append("\n")
            self._write("".join(parts).encode("utf-8", "replace"))
            self.written += count

    def _write(self, data: bytes) -> None:
        if self.to_stdout:
            out = getattr(sys.stdout, "buffer", None)
            if out is None:  # a text-only stream in place of the standard output
                sys.stdout.write(data.decode("utf-8", "replace"))
            else:
                out.write(data)
            sys.stdout.flush()
            return
        try:
            file = self._open()
            view = memoryview(data)
            while view:  # a raw file may take less than it is given
                written = file.write(view)
                if not written:
                    raise OSError("the file took nothing")
                view = view[written:]
        except OSError as e:
            log.error("access log %s cannot be written: %s", self.path, e)
            self._close_file()

    def _open(self) -> IO[bytes]:
        hour = time.strftime("%Y%m%d-%H") if self.rotate_per_hour else ""
        if self._file is not None and hour != self._hour:
            self._rotate()
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # unbuffered: each batch is one write of its own
            self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115
            self._hour = hour
        return self._file

    def _rotate(self) -> None:
        """Move the current file aside as ``<name>-<hour it was written in>.log``."""
        self._close_file()
        stem, suffix = os.path.splitext(self.path.name)
        aside = self.path.with_name(f"{stem}-{self._hour}{suffix}")
        try:
            os.replace(self.path, aside)
        except OSError as e:
            log.warning("access log rotation to %s failed: %s", aside, e)

    def _close_file(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def close(self) -> None:
        """Write what is left and stop the writer thread."""
        self._stop.set()
        thread = self._writer
        if thread is not None:
            thread.join(timeout=5)
        else:
            self.flush()
            self._close_file()

    def info(self) -> dict[str, object]:
        return {
            "path": "stdout" if self.to_stdout else str(self.path),
            "structured": self.structured,
            "enabled": self.enabled,
            "bufferSize": self.buffer_size,
            "buffered": len(self._lines),
            "written": self.written,
            "discarded": self.discarded,
        }
