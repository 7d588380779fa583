"""The access log: one line per call, written by a background thread to
``<log_dir>/motanmesh-access.log`` in the Go agent's format.

Calls only append a tuple to a bounded buffer (``log_buffer_size``, default 5000); when it
is full the entry is dropped and counted in :attr:`AccessLogWriter.discarded` (the Go
agent's ``accesslog_discard_count``). A request never waits for the disk. The writer thread
wakes every :data:`FLUSH_INTERVAL` seconds, formats what is buffered and appends it to the
file in one write (every line of that batch with the batch's time stamp); with
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
from typing import IO, Final, Protocol

__all__ = [
    "ACCESS_LOG_FILE",
    "ACCESS_LOG_SERVICE",
    "DEFAULT_BUFFER_SIZE",
    "AccessEntry",
    "AccessLogWriter",
    "LineMaker",
    "RawAccess",
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


class LineMaker(Protocol):
    """What makes the line of a :data:`RawAccess` (the access-log filter that queued it)."""

    def entry(self, raw: RawAccess, /) -> AccessEntry:
        """The line's fields."""
        ...

    def line(self, raw: RawAccess, /) -> str:
        """``format_plain(self.entry(raw))``."""
        ...


#: what the request path queues: ``(maker, role, remoteAddress, requestID, service, method,
#: desc, reqSize, resSize, totalTime, M_pt, upstreamCode, M_e of an exception status or "",
#: (errcode, errmsg, errtype) of a call without answer or None)``; ``maker`` is the number
#: :meth:`AccessLogWriter.register` gave the filter that queued it, which the writer thread
#: asks for the line. Only strings, numbers, ``None`` and a tuple of those: the garbage
#: collector stops tracking the entry the first time it sees it, so the entries waiting for
#: the writer (up to 50 ms of calls) are never promoted to older generations, whose
#: collections would then scan them all.
RawAccess = tuple[
    int,
    str,
    str,
    int,
    str,
    str,
    str,
    int,
    int,
    int,
    str,
    str,
    str,
    tuple[int, str, int] | None,
]

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
        self._buffer: collections.deque[AccessEntry] = collections.deque()
        self._raw: collections.deque[RawAccess] = collections.deque()
        #: what makes the lines, by the number queued entries carry (one per class)
        self._makers: list[LineMaker] = []
        self._maker_ids: dict[type, int] = {}
        self._file: IO[str] | None = None
        self._hour = ""
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ request path

    def add(self, entry: AccessEntry) -> None:
        """Queue one entry; never blocks. Dropped (and counted) when the buffer is full."""
        if len(self._buffer) + len(self._raw) >= self.buffer_size:
            self.discarded += 1
            self._period_discarded += 1
            return
        self._buffer.append(entry)
        if self._writer is None:
            self._start()

    def register(self, maker: LineMaker) -> int:
        """The number that entries queued by ``maker`` carry (``raw[0]``). A maker's lines
        depend only on its class, so one instance per class serves: the number stays
        bounded however many refers and services come and go."""
        kind = type(maker)
        found = self._maker_ids.get(kind)
        if found is None:
            found = self._maker_ids[kind] = len(self._makers)
            self._makers.append(maker)
        return found

    def add_raw(self, raw: RawAccess) -> None:
        """Queue what a call's line is made of (:data:`RawAccess`): the writer thread makes
        the fields and the line with the maker ``raw[0]`` names. Never blocks; dropped (and
        counted) when the buffer is full."""
        buffer = self._raw
        if len(buffer) + len(self._buffer) >= self.buffer_size:
            self.discarded += 1
            self._period_discarded += 1
            return
        buffer.append(raw)
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

        One batch: the lines of the entries queued when it starts, all with the time stamp of
        the batch (the writer wakes every :data:`FLUSH_INTERVAL`), joined and written at
        once, so the thread holds the interpreter for little more than making the lines."""
        buffer = self._buffer
        raws = self._raw
        if not buffer and not raws:
            return
        with self._lock:
            structured = self.structured
            texts: list[str] = []
            fmt = format_structured if structured else format_plain
            n = len(buffer)
            while n:
                n -= 1
                texts.append(fmt(buffer.popleft()))
            makers = self._makers
            n = len(raws)  # what is queued meanwhile goes in the next batch
            while n:
                n -= 1
                raw = raws.popleft()
                try:
                    maker = makers[raw[0]]
                    texts.append(
                        format_structured(maker.entry(raw)) if structured else maker.line(raw)
                    )
                except Exception:
                    log.exception("an access-log entry cannot be made")
            if not texts:
                return
            prefix = format_time(time.time()) + ("\t\t" if structured else "\t")
            self._write(prefix + ("\n" + prefix).join(texts) + "\n")
            self.written += len(texts)

    def _write(self, text: str) -> None:
        if self.to_stdout:
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        try:
            out = self._open()
            out.write(text)
            out.flush()
        except OSError as e:
            log.error("access log %s cannot be written: %s", self.path, e)
            self._close_file()

    def _open(self) -> IO[str]:
        hour = time.strftime("%Y%m%d-%H") if self.rotate_per_hour else ""
        if self._file is not None and hour != self._hour:
            self._rotate()
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
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
            "buffered": len(self._buffer) + len(self._raw),
            "written": self.written,
            "discarded": self.discarded,
        }
