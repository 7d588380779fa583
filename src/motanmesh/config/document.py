"""YAML files → one merged document that remembers which file set each key.

Merge rules: mappings merge deeply, lists append, scalars override, ``null`` values are
ignored. Keys are normalised to strings (``true``/``false``, decimal numbers).
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from motanmesh.config.errors import ConfigError
from motanmesh.config.values import describe, to_param

__all__ = ["Document", "read_yaml"]

Path_ = tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    """Safe YAML without timestamp conversion: dates stay strings."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _normalise(value: Any, file: str, path: Path_) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(key, str):
                name = key
            else:
                try:
                    name = to_param(key) or ""
                except ValueError:
                    raise ConfigError(file, path, f"unsupported key {describe(key)}") from None
            out[name] = _normalise(item, file, (*path, name))
        return out
    if isinstance(value, list):
        return [_normalise(item, file, (*path, i)) for i, item in enumerate(value)]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ConfigError(file, path, f"unsupported YAML value of type {type(value).__name__}")


def read_yaml(file: str) -> dict[str, Any]:
    """Read one YAML file; an empty file is an empty mapping."""
    try:
        with open(file, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError:
        raise ConfigError(file, "", "not valid UTF-8") from None
    except OSError as exc:
        raise ConfigError(file, "", f"cannot read file: {exc.strerror or exc}") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(file, "", f"invalid YAML{where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(file, "", f"invalid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(file, "", f"expected a mapping at the top level, got {describe(data)}")
    result: dict[str, Any] = _normalise(data, file, ())
    return result


class Document:
    """The merged configuration and, for every key path, the file that set it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.data: dict[str, Any] = {}
        self.files: list[str] = []
        self.key_files: dict[Path_, str] = {}
        self.warnings: list[str] = []

    def merge_file(self, file: str, data: dict[str, Any]) -> None:
        self.files.append(file)
        self._merge(self.data, data, file, ())

    def file_of(self, path: Path_) -> str:
        key = path
        while key:
            found = self.key_files.get(key)
            if found is not None:
                return found
            key = key[:-1]
        return self.files[-1] if self.files else self.source

    def error(self, path: Path_, detail: str) -> ConfigError:
        return ConfigError(self.file_of(path), path, detail)

    def _record(self, value: Any, file: str, path: Path_) -> None:
        self.key_files[path] = file
        if isinstance(value, dict):
            for key, item in value.items():
                self._record(item, file, (*path, key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self._record(item, file, (*path, i))

    def _merge(self, dst: dict[str, Any], src: dict[str, Any], file: str, prefix: Path_) -> None:
        for key, value in src.items():
            if value is None:
                continue
            path = (*prefix, key)
            current = dst.get(key)
            if isinstance(value, dict) and isinstance(current, dict):
                self.key_files.setdefault(path, file)
                self._merge(current, value, file, path)
            elif isinstance(value, list) and isinstance(current, list):
                start = len(current)
                for i, item in enumerate(value):
                    current.append(copy.deepcopy(item))
                    self._record(item, file, (*path, start + i))
            else:
                if isinstance(current, dict | list):
                    self._drop_records(path)
                dst[key] = copy.deepcopy(value)
                self._record(value, file, path)

    def _drop_records(self, path: Path_) -> None:
        size = len(path)
        stale = [k for k in self.key_files if len(k) > size and k[:size] == path]
        for k in stale:
            del self.key_files[k]
