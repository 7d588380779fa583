"""TLS on a Motan2 server port: the accept path that tells TLS from plain Motan2.

A :class:`~motanmesh.transport.server.MotanServer` given a :class:`ServerTls` accepts its TCP
connections itself (a :class:`TlsListener` instead of ``loop.create_server``): each accepted
socket waits, without a transport, until it is readable; its first byte is peeked
(``MSG_PEEK``, nothing consumed): ``0x16`` starts a TLS handshake, anything else (Motan2's
magic ``0xF1F1``, Motan v1's ``0xF0F0``) is plaintext. The socket is then handed to
``loop.connect_accepted_socket`` with the TLS context of the moment (``ServerTls.context()``,
so that renewed certificates apply to new connections only) or without one. In strict mode
plaintext is refused. This works on uvloop and on asyncio's own loop.

The port's limits still hold before the connection exists: sockets waiting for their first
byte or in a handshake count towards ``max_connections``; a first byte that does not come
within ``read_timeout`` closes the socket in strict mode (``readTimeout``: a TLS client
speaks first) and, in permissive mode, makes it a plaintext connection (a Motan2 client's
idle pool connection, kept as a plaintext port keeps it); a handshake that does not finish
within ``ServerTls.handshake_timeout`` is refused (``handshakeTimeout``). Every refusal is
counted by reason (:data:`REFUSAL_REASONS`, ``MotanServer.tls_refused``) and logged at most
once per interval per reason. Plaintext servers (no ``ServerTls``) do none of this.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import TYPE_CHECKING, Final, Protocol

from motanmesh.transport.clock import TimerHandle

if TYPE_CHECKING:
    from motanmesh.transport.server import MotanServer, ServerConnection

__all__ = [
    "REFUSAL_REASONS",
    "ClientTls",
    "ServerTls",
    "TlsListener",
    "TlsRefused",
    "classify_tls_error",
]

_log = logging.getLogger("motanmesh.transport")

#: the first byte of a TLS handshake record
TLS_HANDSHAKE: Final = 0x16
#: sockets accepted per readable event of the listening socket (then the loop runs others)
ACCEPT_BATCH: Final = 64
#: seconds without accepting after accept() failed for want of descriptors or memory
ACCEPT_RETRY: Final = 1.0

#: why a connection to a TLS port was refused
REFUSAL_REASONS: Final = (
    "plaintext",  # plain Motan2 on a strict port
    "noCertificate",  # the client sent no certificate and one is required
    "unknownCa",  # a certificate not signed by a trusted CA
    "expired",  # a certificate past its notAfter
    "notYetValid",  # a certificate before its notBefore
    "badCertificate",  # any other certificate the verification refused
    "identity",  # a verified certificate without the SPIFFE ID the port requires
    "handshakeTimeout",  # the handshake did not finish in time
    "handshake",  # any other handshake failure (protocol, garbage after 0x16...)
)

# OpenSSL X509_V_ERR_* codes (x509_vfy.h)
_VERIFY_REASONS: Final = {
    2: "unknownCa",  # unable to get issuer certificate
    9: "notYetValid",
    10: "expired",
    18: "unknownCa",  # self-signed certificate
    19: "unknownCa",  # self-signed certificate in chain
    20: "unknownCa",  # unable to get local issuer certificate
    21: "unknownCa",  # unable to verify the first certificate
}


class TlsRefused(Exception):  # noqa: N818 - a refusal, as ConnectionRefused
    """A verified TLS peer that the port does not accept (``reason`` in REFUSAL_REASONS)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ServerTls(Protocol):
    """What a server needs to speak TLS on its TCP listeners."""

    @property
    def strict(self) -> bool:
        """True: plaintext is refused; False (permissive): both are served."""

    @property
    def handshake_timeout(self) -> float: ...

    def context(self) -> ssl.SSLContext:
        """The server context for a new connection (the newest certificates)."""

    def identity(self, peercert: dict[str, object] | None) -> str:
        """The caller's workload identity from its verified certificate ("" for none); raise
        :class:`TlsRefused` for a certificate the port does not accept."""


class ClientTls(Protocol):
    """What an endpoint needs to connect with TLS."""

    def context(self) -> ssl.SSLContext:
        """The client context for a new connection (the newest certificates)."""

    def check_server(self, peercert: dict[str, object] | None) -> None:
        """Raise :class:`TlsRefused` for a verified server certificate that is not accepted
        (a SPIFFE ID outside the trust domain)."""


def classify_tls_error(error: BaseException) -> str:
    """The refusal reason for an exception from a server-side handshake."""
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return "handshakeTimeout"
    if isinstance(error, ssl.SSLCertVerificationError):
        return _VERIFY_REASONS.get(error.verify_code, "badCertificate")
    if isinstance(error, ssl.SSLError):
        reason = str(getattr(error, "reason", "") or "")
        if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
            return "noCertificate"
        if reason.startswith("TLSV1_ALERT_UNKNOWN_CA") or reason == "SSLV3_ALERT_BAD_CERTIFICATE":
            return "badCertificate"
        if reason == "SSLV3_ALERT_CERTIFICATE_EXPIRED":
            return "expired"
        if "CERTIFICATE_VERIFY_FAILED" in reason:
            return "badCertificate"
        return "handshake"
    if isinstance(error, ConnectionAbortedError) and "handshake" in str(error).lower():
        return "handshakeTimeout"  # asyncio's and uvloop's wording for a handshake timeout
    return "handshake"


class _Incoming:
    """One accepted socket until its first byte is seen and its connection is made."""

    __slots__ = ("handed", "listener", "peer", "sock", "task", "timer")

    def __init__(self, listener: TlsListener, sock: socket.socket, peer: str) -> None:
        self.listener = listener
        self.sock = sock
        self.peer = peer
        self.timer: TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None
        #: the socket belongs to a transport now (never closed here again)
        self.handed = False


class TlsListener:
    """A listening TCP socket of a :class:`MotanServer` with TLS (see the module text)."""

    def __init__(self, server: MotanServer, sock: socket.socket, tls: ServerTls) -> None:
        self._server = server
        self._sock = sock
        self._tls = tls
        from motanmesh.transport.server import format_address  # noqa: PLC0415 - a cycle

        self._format = format_address
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self._incoming: set[_Incoming] = set()
        self._loop.add_reader(sock.fileno(), self._accept)

    @property
    def sockets(self) -> list[socket.socket]:
        return [] if self._closed else [self._sock]

    @property
    def waiting(self) -> int:
        """Accepted sockets not yet made into connections (first byte or handshake)."""
        return len(self._incoming)

    # ------------------------------------------------------------------ accept

    def _accept(self) -> None:
        server = self._server
        for _ in range(ACCEPT_BATCH):
            try:
                sock, addr = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # gone before it was accepted
            except OSError as e:
                # out of descriptors (EMFILE, ENFILE) or buffers: the listening socket stays
                # readable, so stop watching it for a while instead of spinning (as asyncio's
                # own servers do)
                server.hit("acceptFailed", f"accept failed: {e}; retrying in {ACCEPT_RETRY}s")
                self._loop.remove_reader(self._sock.fileno())
                self._loop.call_later(ACCEPT_RETRY, self._resume_accepting)
                return
            peer = self._format(addr)
            if server.connection_count + server.tls_waiting >= server.limits.max_connections:
                sock.close()
                server.hit(
                    "connectionsRefused",
                    f"refusing connections over maxConnections={server.limits.max_connections}",
                )
                continue
            sock.setblocking(False)
            incoming = _Incoming(self, sock, peer)
            self._incoming.add(incoming)
            try:
                self._loop.add_reader(sock.fileno(), self._first_byte, incoming)
            except Exception:
                self._drop(incoming)
                raise
            timeout = server.limits.read_timeout
            if timeout is not None:
                incoming.timer = server.clock.call_later(timeout, self._silent, incoming)

    def _resume_accepting(self) -> None:
        if not self._closed:
            self._loop.add_reader(self._sock.fileno(), self._accept)

    def _silent(self, incoming: _Incoming) -> None:
        """No first byte within the read timeout: a TLS client speaks first, so in strict
        mode the socket is closed; in permissive mode it is a plain Motan2 client whose pool
        connection is idle, served as on a plaintext port."""
        incoming.timer = None
        if incoming.task is not None or incoming not in self._incoming:
            return
        if not self._tls.strict:
            self._loop.remove_reader(incoming.sock.fileno())
            incoming.task = self._loop.create_task(self._establish(incoming, None))
            return
        timeout = self._server.limits.read_timeout or 0
        self._server.hit(
            "readTimeout", f"closing {incoming.peer}: nothing received in {timeout:g} s"
        )
        self._drop(incoming)

    def _first_byte(self, incoming: _Incoming) -> None:
        sock = incoming.sock
        self._loop.remove_reader(sock.fileno())
        if incoming.timer is not None:
            incoming.timer.cancel()
            incoming.timer = None
        try:
            first = sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            self._loop.add_reader(sock.fileno(), self._first_byte, incoming)
            return
        except OSError:
            first = b""
        if not first:  # closed (or reset) before sending anything
            self._drop(incoming)
            return
        tls = self._tls
        server = self._server
        context: ssl.SSLContext | None = None
        if first[0] == TLS_HANDSHAKE:
            try:
                context = tls.context()
            except Exception as e:  # no usable certificate: nothing to answer TLS with
                server.tls_refuse("handshake", f"refusing TLS from {incoming.peer}: {e}")
                self._drop(incoming)
                return
        elif tls.strict:
            server.tls_refuse(
                "plaintext", f"refusing plaintext from {incoming.peer}: this port requires TLS"
            )
            self._drop(incoming)
            return
        incoming.task = self._loop.create_task(self._establish(incoming, context))

    async def _establish(self, incoming: _Incoming, context: ssl.SSLContext | None) -> None:
        server = self._server

        def protocol() -> ServerConnection:
            incoming.handed = True
            return server._new_connection()

        try:
            if context is None:
                await self._loop.connect_accepted_socket(protocol, incoming.sock)
            else:
                await self._loop.connect_accepted_socket(
                    protocol,
                    incoming.sock,
                    ssl=context,
                    ssl_handshake_timeout=self._tls.handshake_timeout,
                )
        except asyncio.CancelledError:
            raise
        except Exception as e:
            if context is None:  # a plaintext peer gone at once (reset): not a refusal
                _log.debug("plaintext connection from %s failed: %s", incoming.peer, e)
            else:
                reason = classify_tls_error(e)
                server.tls_refuse(reason, f"refusing TLS from {incoming.peer}: {_describe(e)}")
        finally:
            self._incoming.discard(incoming)
            if not incoming.handed:
                incoming.sock.close()

    def _drop(self, incoming: _Incoming) -> None:
        self._incoming.discard(incoming)
        if incoming.timer is not None:
            incoming.timer.cancel()
            incoming.timer = None
        if not incoming.handed:
            if incoming.task is None:
                self._loop.remove_reader(incoming.sock.fileno())
            incoming.sock.close()

    # ------------------------------------------------------------------ close

    def close(self) -> None:
        """Stop accepting; drop sockets that are not connections yet."""
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        for incoming in list(self._incoming):
            if incoming.task is not None:
                incoming.task.cancel()
            else:
                self._drop(incoming)

    async def wait_closed(self) -> None:
        tasks = [i.task for i in self._incoming if i.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _describe(error: BaseException) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate refused: {error.verify_message}"
    text = str(error) or type(error).__name__
    return text


def tcp_socket(host: str, port: int) -> socket.socket:
    """A listening, non-blocking TCP socket on ``host:port`` (as ``loop.create_server``
    makes them: ``SO_REUSEADDR``, backlog 1024)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _type, _proto, _name, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(1024)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
