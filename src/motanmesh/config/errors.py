"""The single exception raised for any problem in the agent configuration."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ConfigError", "KeyPath", "format_key_path"]

KeyPath = Sequence[str | int]


def format_key_path(path: KeyPath | str) -> str:
    """``("motan-refer", "demo", "requestTimeout")`` → ``motan-refer.demo.requestTimeout``.

    List indexes are written ``[i]`` (``import-refer[1]``).
    """
    if isinstance(path, str):
        return path
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


class ConfigError(Exception):
    """A configuration problem, found before anything starts.

    The message names the file and the key path:
    ``agent.yaml: motan-refer.demo.requestTimeout: expected an integer, got 'abc'``.
    """

    def __init__(self, file: str, key_path: KeyPath | str, detail: str) -> None:
        self.file = file
        self.key_path = format_key_path(key_path)
        self.detail = detail
        where = f"{file}: {self.key_path}" if self.key_path else file
        super().__init__(f"{where}: {detail}")
