"""``/logConfig/get`` and ``/logConfig/set`` of the management API, as in the Go agent.

* ``/logConfig/get``: ``{"code":200,"body":"{\\"level\\":\\"info\\",\\"accessLog\\":true,
  \\"metricsLog\\":true}"}`` (the body is a JSON text inside the JSON answer).
* ``/logConfig/set?level=debug|info|warn|error|...``: the agent's log level.
* ``/logConfig/set?access=true|false``: the access log on or off (``accessLog`` and
  ``clusterAccessLog`` filters stop adding lines at once).
* ``/logConfig/set?metrics=true|false``: the metrics log flag (kept for the Go agent's
  tools; this agent writes no metrics log file).
"""

from __future__ import annotations

import json
import logging
from typing import Final

from motanmesh.agent.http_server import HttpResponse
from motanmesh.filters.access_log import access_log_writer
from motanmesh.filters.base import FilterContext

__all__ = ["LogConfig"]

_LEVELS: Final = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "dpanic": logging.CRITICAL,
    "panic": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}
_NAMES: Final = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "fatal",
}
_TRUE: Final = frozenset({"1", "t", "T", "true", "TRUE", "True"})
_FALSE: Final = frozenset({"0", "f", "F", "false", "FALSE", "False"})


def _answer(code: int, body: str) -> HttpResponse:
    # Go's json.Encoder: compact, HTML characters escaped, a newline at the end
    text = json.dumps({"code": code, "body": body}, separators=(",", ":"))
    return HttpResponse(200, text + "\n", "application/json")


class LogConfig:
    """The log switches of one agent."""

    def __init__(self, context: FilterContext) -> None:
        self.context = context
        self.metrics_log = True

    def get(self) -> HttpResponse:
        level = logging.getLogger().getEffectiveLevel()
        body = json.dumps(
            {
                "level": _NAMES.get(level, "info"),
                "accessLog": access_log_writer(self.context).enabled,
                "metricsLog": self.metrics_log,
            },
            separators=(",", ":"),
        )
        return _answer(200, body)

    def set(self, level: str, access: str, metrics: str) -> HttpResponse:
        """One change, in the Go agent's order of precedence: level, access, metrics."""
        if level:
            value = _LEVELS.get(level.lower())
            if value is None:
                return _answer(500, f"set log level failed. err:unrecognized level:{level}")
            logging.getLogger().setLevel(value)
            return _answer(200, f"set log level:{level}")
        if access:
            return self._switch("accessLog", access)
        if metrics:
            return self._switch("metricsLog", metrics)
        return HttpResponse(200, "")

    def _switch(self, what: str, value: str) -> HttpResponse:
        if value in _TRUE:
            on = True
        elif value in _FALSE:
            on = False
        else:
            return _answer(
                500,
                f'set {what} status failed. err:strconv.ParseBool: parsing "{value}": '
                "invalid syntax",
            )
        if what == "accessLog":
            access_log_writer(self.context).enabled = on
        else:
            self.metrics_log = on
        return _answer(200, f"set {what} status:{value}")
