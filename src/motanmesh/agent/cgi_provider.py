"""The ``cgi`` provider: an exported Motan2 service served by a FastCGI server (php-fpm).

As the Go agent's ``provider/cgiProvider.go``:

* the server is ``CGI_HOST`` (default ``127.0.0.1``, or ``unix:/path``) port ``CGI_PORT``
  (default 9000); one connection per call;
* the CGI environment: ``SERVER_SOFTWARE=Motan / CGI``, then every ``CGI_<NAME>`` parameter
  of the service as ``<NAME>`` (``CGI_SCRIPT_FILENAME``, ``CGI_DOCUMENT_ROOT`` and
  ``CGI_REQUEST_METHOD`` are the ones a responder needs), then every request attachment ``k``
  as ``MOTAN_k``;
* the arguments: the first one (a map or a string) becomes
  ``requestIdFromClient=<request id>&k=v...`` (a string is appended escaped); with
  ``REQUEST_METHOD=GET`` that is ``QUERY_STRING``, with ``POST`` it is the form body
  (``CONTENT_TYPE`` ``application/x-www-form-urlencoded``, ``CONTENT_LENGTH``);
* the answer: the script's headers become response attachments (``Status`` aside); the
  ``Status:`` header, when the script sent one, gives the status, put into attachment
  ``upstreamCode`` (default 200); the response value is the body, as a string (bytes when it
  is not UTF-8).

Failures are exception responses with errtype 1: 400 arguments that do not decode; 502 an
answer that is not a CGI response or that breaks the protocol; 503 the FastCGI server cannot
be reached; 504 no answer within ``requestTimeout`` (ms, default 1000).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from time import perf_counter
from typing import Any, Final
from urllib.parse import quote_plus

from motanmesh.agent import fastcgi
from motanmesh.agent.providers import elapsed_ms, error_answer
from motanmesh.transport.server import Responder, ServerConnection
from motanmesh.url import URL
from motanmesh.wire.frame import (
    DEFAULT_MAX_CONTENT_LENGTH,
    FLAG_GZIP,
    M_PROCESS_TIME,
    Frame,
    gunzip,
    response_frame,
)
from motanmesh.wire.serialization import get_serialization

__all__ = ["CgiProvider", "cgi_params", "parse_cgi_response", "query_of"]

log = logging.getLogger("motanmesh.agent")

CGI_PREFIX: Final = "CGI_"
DEFAULT_CGI_HOST: Final = "127.0.0.1"
DEFAULT_CGI_PORT: Final = 9000
SERVER_SOFTWARE: Final = "Motan / CGI"
UPSTREAM_CODE: Final = "upstreamCode"
REQUEST_ID_KEY: Final = "requestIdFromClient"
_FORM: Final = "application/x-www-form-urlencoded"
_NOT_ENV: Final = frozenset({"CGI_HOST", "CGI_PORT"})

E_BAD_ARGUMENTS: Final = 400
E_BAD_GATEWAY: Final = 502
E_UNAVAILABLE: Final = 503
E_TIMEOUT: Final = 504


class CgiResponseError(ValueError):
    """What the FastCGI server wrote on STDOUT is not a CGI response."""


def cgi_params(url: URL) -> dict[str, str]:
    """The CGI environment the service's parameters give (before attachments)."""
    env = {"SERVER_SOFTWARE": SERVER_SOFTWARE}
    for key, value in url.parameters.items():
        if key.startswith(CGI_PREFIX) and key not in _NOT_ENV and len(key) > len(CGI_PREFIX):
            env[key[len(CGI_PREFIX) :]] = value
    return env


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def query_of(request_id: int, arg: Any) -> str:
    """The query (or form body) the Go agent builds from the first argument."""
    if arg is None:
        return ""
    parts = [f"{REQUEST_ID_KEY}={request_id}"]
    if isinstance(arg, Mapping):
        parts += [f"{quote_plus(_text(k))}={quote_plus(_text(v))}" for k, v in arg.items()]
    elif isinstance(arg, str | bytes):
        parts.append(quote_plus(_text(arg)))
    return "&".join(parts)


def parse_cgi_response(stdout: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of a CGI response (header block ended by a blank line)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        head, found, body = stdout.partition(sep)
        if found:
            break
    else:
        raise CgiResponseError("Cannot parse FastCGI Response")
    status = 200
    headers: dict[str, str] = {}
    for raw in head.decode("latin-1").splitlines():
        name, colon, value = raw.partition(":")
        if not colon:
            continue
        name, value = name.strip(), value.strip()
        if name.lower() == "status":
            code = value.split(" ", 1)[0]
            if not code.isdigit():
                raise CgiResponseError(f"bad CGI Status header {raw!r}")
            status = int(code)
            continue
        headers[name] = value
    return status, headers, body


class CgiProvider:
    """Serves an exported service with a FastCGI responder (see the module docs)."""

    def __init__(self, url: URL) -> None:
        self.url = url
        self.host = url.get("CGI_HOST", DEFAULT_CGI_HOST)
        self.port = url.get_int("CGI_PORT", DEFAULT_CGI_PORT)
        self.env = cgi_params(url)
        self.method = self.env.get("REQUEST_METHOD", "").upper()
        self.timeout = max(1, url.request_timeout_ms) / 1000
        self.max_content_length = url.get_int("maxContentLength", DEFAULT_MAX_CONTENT_LENGTH)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def __call__(self, frame: Frame, respond: Responder, conn: ServerConnection) -> None:
        start = perf_counter()
        try:
            body = frame.body
            if frame.flags & FLAG_GZIP:
                body = gunzip(body, self.max_content_length)
            args = get_serialization(frame.serialization).decode_multi(body) if body else []
        except Exception as e:
            message = f"cgi provider: bad arguments: {e}"
            respond(error_answer(frame, start, E_BAD_ARGUMENTS, message))
            return
        env = dict(self.env)
        for key, value in frame.metadata.items():
            env["MOTAN_" + key] = value
        query = query_of(frame.request_id, args[0] if args else None)
        stdin = b""
        if self.method == "GET":
            env["QUERY_STRING"] = query
        elif self.method == "POST":
            stdin = query.encode()
            env["CONTENT_TYPE"] = _FORM
            env["CONTENT_LENGTH"] = str(len(stdin))
        task = asyncio.get_running_loop().create_task(self._run(frame, respond, start, env, stdin))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(
        self, frame: Frame, respond: Responder, start: float, env: dict[str, str], stdin: bytes
    ) -> None:
        try:
            result = await fastcgi.request(
                self.host,
                self.port,
                env,
                stdin,
                timeout=self.timeout,
                max_size=self.max_content_length,
            )
            status, headers, body = parse_cgi_response(result.stdout)
        except asyncio.CancelledError:
            respond(error_answer(frame, start, E_UNAVAILABLE, "cgi provider is closed"))
            raise
        except TimeoutError:
            ms = round(self.timeout * 1000)
            respond(error_answer(frame, start, E_TIMEOUT, f"cgi upstream timeout after {ms}ms"))
            return
        except CgiResponseError as e:
            respond(error_answer(frame, start, E_BAD_GATEWAY, str(e)))
            return
        except fastcgi.FastCgiUnavailableError as e:
            respond(error_answer(frame, start, E_UNAVAILABLE, str(e)))
            return
        except fastcgi.FastCgiError as e:
            respond(error_answer(frame, start, E_BAD_GATEWAY, str(e)))
            return
        if result.stderr:
            text = result.stderr[:1024].decode("utf-8", "replace")
            log.warning("cgi %s: %s", self.url.path, text)
        meta = {**headers, UPSTREAM_CODE: str(status), M_PROCESS_TIME: elapsed_ms(start)}
        try:
            value: str | bytes = body.decode("utf-8")
        except UnicodeDecodeError:
            value = body
        ser = get_serialization(frame.serialization)
        respond(
            response_frame(
                frame.request_id,
                meta,
                ser.encode(value),
                serialization=frame.serialization,
                proxy=True,
            ).encode()
        )
