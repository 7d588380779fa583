"""Motan service URLs: ``protocol://host:port/path?group=G&k1=v1&k2=v2``.

This is the string a registry stores for every service node, and the object every layer uses
to describe a refer, a service, a registry or the agent itself.

Text form (``to_ext_info`` / ``str``):

* ``group=`` is always the first query parameter, followed by the other parameters sorted by
  key. This is the order the Go agent writes, so a node written here is byte-identical to one
  written by motan-go for the same data.
* Values are written raw, as motan-go and Java motan write them, except for the few characters
  that would break the structure or the reader: ``%``, ``&``, ``=``, ``#``, ``?``, whitespace
  and control characters, which are percent-escaped. ``,``, ``:``, ``/`` and non-ASCII text
  stay readable (``filter=accessLog,metrics``). Path and group use the same rule.
* ``?`` is omitted only when the group is empty and there are no parameters.
* IPv6 hosts are written in brackets; hosts starting with ``unix`` (unix socket paths such as
  ``unix:///tmp/agent.sock``) are written as they are.

Parsing (``URL.parse`` / ``URL.from_ext_info``) accepts that form and its variants: a missing
port (0), IPv6 hosts in brackets, percent-encoded keys and values (``+`` is kept as ``+``, since
motan writers never encode spaces that way), empty segments and a trailing ``&`` (Java), query
segments without ``=`` (ignored). Anything else raises ``ValueError``.

Instances are immutable by convention: never mutate ``parameters``; use ``copy`` and
``with_params``, which return new URLs.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

__all__ = ["URL"]

_PROTOCOL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-_]*\Z")
_UNIX_AUTHORITY_RE = re.compile(r"(unix:/[^?#]*?):(\d+)(?:/(.*))?\Z", re.DOTALL)
_BAD_HOST_CHARS = frozenset(" \t\r\n[]@/?#")
_TRUE = frozenset({"1", "t", "T", "true", "TRUE", "True"})
_FALSE = frozenset({"0", "f", "F", "false", "FALSE", "False"})
_INT_RE = re.compile(r"[+-]?[0-9]+\Z")
_METHOD_MARK = ")."


def _escape_table(chars: Iterable[str]) -> dict[int, str]:
    table = {c: f"%{c:02X}" for c in range(0x21)}
    table[0x7F] = "%7F"
    for ch in chars:
        table[ord(ch)] = f"%{ord(ch):02X}"
    return table


_QUERY_ESCAPES = _escape_table("%&=#?")
_PATH_ESCAPES = _escape_table("%#?")

_PROTOCOL_ALIASES = {"cedrus": "motan2"}
# Refer protocols that accept a request whose M_pp is "motan" or "motan2".
_MOTAN_FAMILY = frozenset({"motan2", "motanV1Compatible"})
_MOTAN_REQUEST_PROTOCOLS = frozenset({"motan", "motan2"})


def _split_list(value: str) -> list[str]:
    return [item for item in (part.strip() for part in value.split(",")) if item]


@dataclass(frozen=True, slots=True)
class URL:
    """A motan service URL. ``parameters`` never contains ``group`` (it has its own field)."""

    protocol: str
    host: str = ""
    port: int = 0
    path: str = ""
    group: str = ""
    parameters: dict[str, str] = field(default_factory=dict)
    _has_method_params: bool = field(default=False, init=False, repr=False, compare=False)
    _ext_info: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.port, int) or isinstance(self.port, bool):
            raise ValueError(f"URL port must be an int, got {self.port!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"URL port out of range 0..65535: {self.port}")
        params = dict(self.parameters)
        group = params.pop("group", None)
        if group is not None and not self.group:
            object.__setattr__(self, "group", group)
        object.__setattr__(self, "parameters", params)
        object.__setattr__(self, "_has_method_params", any(_METHOD_MARK in key for key in params))

    def __hash__(self) -> int:
        return hash(self.to_ext_info())

    # ------------------------------------------------------------------ text form

    @classmethod
    def parse(cls, text: str) -> URL:
        """Parse ``protocol://host:port/path?query``; raise ``ValueError`` for garbage."""
        if not isinstance(text, str):
            raise ValueError(f"motan URL must be a string, got {type(text).__name__}")
        s = text.strip(" \t\r\n\f\v")
        scheme, sep, rest = s.partition("://")
        if not sep:
            raise ValueError(f"invalid motan URL {text!r}: missing '://'")
        if not _PROTOCOL_RE.match(scheme):
            raise ValueError(f"invalid motan URL {text!r}: bad protocol {scheme!r}")
        rest, _, _fragment = rest.partition("#")
        location, _, query = rest.partition("?")
        if location.startswith("unix:/"):
            m = _UNIX_AUTHORITY_RE.match(location)
            if m is None:
                raise ValueError(f"invalid motan URL {text!r}: unix socket host needs ':port/'")
            host, port_text, path = m.group(1), m.group(2), m.group(3) or ""
        else:
            authority, _, path = location.partition("/")
            host, port_text = cls._split_authority(authority, text)
        if port_text == "":
            port = 0
        elif port_text.isdigit() and port_text.isascii():
            port = int(port_text)
            if port > 65535:
                raise ValueError(f"invalid motan URL {text!r}: port {port} out of range")
        else:
            raise ValueError(f"invalid motan URL {text!r}: port {port_text!r} is not a number")
        params: dict[str, str] = {}
        if query:
            for segment in query.split("&"):
                key, eq, value = segment.partition("=")
                if not eq or not key:
                    continue
                params[unquote(key)] = unquote(value)
        group = params.pop("group", "")
        return cls(scheme, host, port, unquote(path), group, params)

    from_ext_info = parse

    @staticmethod
    def _split_authority(authority: str, text: str) -> tuple[str, str]:
        if authority.startswith("["):
            end = authority.find("]")
            if end < 0:
                raise ValueError(f"invalid motan URL {text!r}: unclosed '[' in host")
            host, tail = authority[1:end], authority[end + 1 :]
            if tail and not tail.startswith(":"):
                raise ValueError(f"invalid motan URL {text!r}: junk after IPv6 host")
            if any(ch in _BAD_HOST_CHARS for ch in host):
                raise ValueError(f"invalid motan URL {text!r}: bad host {host!r}")
            return host, tail[1:]
        if authority.count(":") > 1:
            raise ValueError(f"invalid motan URL {text!r}: IPv6 host must be in brackets")
        host, _, port_text = authority.partition(":")
        if any(ch in _BAD_HOST_CHARS for ch in host):
            raise ValueError(f"invalid motan URL {text!r}: bad host {host!r}")
        return host, port_text

    def _host_text(self) -> str:
        host = self.host
        if ":" in host and not host.startswith("unix"):
            return f"[{host}]"
        return host

    def to_ext_info(self) -> str:
        """The registry form; ``group`` first, then the parameters sorted by key."""
        cached = self._ext_info
        if cached is not None:
            return cached
        head = f"{self.protocol}://{self._host_text()}:{self.port}/"
        head += self.path.translate(_PATH_ESCAPES)
        params = self.parameters
        if self.group or params:
            parts = [head, "?group=", self.group.translate(_QUERY_ESCAPES)]
            for key in sorted(params):
                parts.append("&")
                parts.append(key.translate(_QUERY_ESCAPES))
                parts.append("=")
                parts.append(params[key].translate(_QUERY_ESCAPES))
            head = "".join(parts)
        object.__setattr__(self, "_ext_info", head)
        return head

    def __str__(self) -> str:
        return self.to_ext_info()

    # ------------------------------------------------------------------ parameters

    def get(self, key: str, default: str = "") -> str:
        """Parameter value; an empty value counts as missing."""
        value = self.parameters.get(key)
        return value if value else default

    def get_int(self, key: str, default: int = 0) -> int:
        value = self.parameters.get(key)
        if value is not None and _INT_RE.match(value):
            return int(value)
        return default

    def get_bool(self, key: str, default: bool = False) -> bool:
        value = self.parameters.get(key)
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        return default

    def get_float(self, key: str, default: float = 0.0) -> float:
        value = self.parameters.get(key)
        if value:
            try:
                return float(value)
            except ValueError:
                return default
        return default

    def get_list(self, key: str) -> list[str]:
        """A comma-separated parameter as a list, blanks dropped."""
        return _split_list(self.parameters.get(key, ""))

    def get_method_param(self, method: str, desc: str, key: str, default: str = "") -> str:
        """``method(desc).key`` if set, else ``key``, else ``default``."""
        if self._has_method_params:
            value = self.parameters.get(f"{method}({desc}).{key}")
            if value:
                return value
        return self.get(key, default)

    def get_method_int(self, method: str, desc: str, key: str, default: int = 0) -> int:
        """Integer form of ``get_method_param``; unparsable values fall through."""
        if self._has_method_params:
            value = self.parameters.get(f"{method}({desc}).{key}")
            if value is not None and _INT_RE.match(value):
                return int(value)
        return self.get_int(key, default)

    # ------------------------------------------------------------------ common properties

    @property
    def address(self) -> str:
        """``host:port``; a unix socket host is returned as it is."""
        if self.host.startswith("unix"):
            return self.host
        return f"{self._host_text()}:{self.port}"

    @property
    def version(self) -> str:
        return self.get("version", "1.0")

    @property
    def serialization(self) -> str:
        return self.get("serialization", "simple")

    @property
    def request_timeout_ms(self) -> int:
        return self.get_int("requestTimeout", 1000)

    @property
    def retries(self) -> int:
        return self.get_int("retries", 0)

    @property
    def ha_strategy(self) -> str:
        return self.get("haStrategy", "failover")

    @property
    def loadbalance(self) -> str:
        return self.get("loadbalance", "random")

    @property
    def application(self) -> str:
        return self.get("application")

    @property
    def registry(self) -> list[str]:
        """Registry ids from the comma-separated ``registry`` parameter."""
        return self.get_list("registry")

    @property
    def filters(self) -> list[str]:
        """Filter names from the comma-separated ``filter`` parameter."""
        return self.get_list("filter")

    @property
    def weight(self) -> int:
        """The ``weight`` parameter; 0 when unset."""
        return self.get_int("weight", 0)

    @property
    def node_type(self) -> str:
        return self.get("nodeType")

    @property
    def conf_id(self) -> str:
        return self.get("conf-id")

    @property
    def group_path(self) -> str:
        """Server-side dispatch key: ``group_path``."""
        return f"{self.group}_{self.path}"

    @property
    def cluster_key(self) -> str:
        """``group_version_protocol_path``, with ``cedrus`` counted as ``motan2``."""
        protocol = _PROTOCOL_ALIASES.get(self.protocol, self.protocol)
        return f"{self.group}_{self.version}_{protocol}_{self.path}"

    @property
    def identity(self) -> str:
        """Stable identity: protocol, host, port, path and group (plus address for direct)."""
        ident = f"{self.protocol}://{self._host_text()}:{self.port}/{self.path}?group={self.group}"
        if self.protocol == "direct":
            ident += "&address=" + self.parameters.get("address", "")
        return ident

    def is_match(self, path: str, group: str = "", protocol: str = "", version: str = "") -> bool:
        """Whether a request for ``path``/``group``/``M_pp``/``M_v`` fits this refer.

        An empty group or protocol matches anything; ``motan`` and ``motan2`` requests both
        match a motan2 refer; the version is compared only when both sides have one.
        """
        if self.path != path:
            return False
        if group and self.group != group:
            return False
        if protocol:
            own = _PROTOCOL_ALIASES.get(self.protocol, self.protocol)
            if own in _MOTAN_FAMILY:
                if protocol not in _MOTAN_REQUEST_PROTOCOLS:
                    return False
            elif own != _PROTOCOL_ALIASES.get(protocol, protocol):
                return False
        own_version = self.parameters.get("version", "")
        return not (version and own_version and version != own_version)

    # ------------------------------------------------------------------ derived URLs

    def copy(self, **changes: Any) -> URL:
        """A new URL with some fields replaced (``host=``, ``port=``, ``parameters=`` ...)."""
        return dataclasses.replace(self, **changes)

    def with_params(self, params: Mapping[str, str] | None = None, /, **more: str) -> URL:
        """A new URL with parameters added or replaced (mapping form for keys like ``conf-id``)."""
        merged = dict(self.parameters)
        if params:
            merged.update(params)
        merged.update(more)
        group = merged.pop("group", self.group)
        return dataclasses.replace(self, group=group, parameters=merged)

    def without_params(self, *keys: str) -> URL:
        """A new URL without the given parameters."""
        return dataclasses.replace(
            self, parameters={k: v for k, v in self.parameters.items() if k not in keys}
        )
