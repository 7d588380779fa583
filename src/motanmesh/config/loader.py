"""Load the agent configuration: one YAML file, or a directory of files selected by pool.

Directory (pool) mode reads, in this order, each file only if it exists:

1. ``basic.yaml``
2. ``http/service/<application>.yaml`` (its ``import-http-location`` files
   ``http/location/<name>.yaml`` are merged before it)
3. ``http/pools/<pool>.yaml`` (same imports)
4. ``applications/<application>.yaml`` (its ``import-refer`` files ``services/<name>.yaml`` are
   merged before it)
5. ``pools/<p1>.yaml``, ``pools/<p1>-<p2>.yaml``, ... for a pool named ``p1-p2-...``

The application defaults to the first ``-``-separated part of the pool name. A missing
imported file is skipped with a warning (``Config.warnings``); an import location is read at
most once.

``dynamic-param`` placeholders are resolved after merging: a string that is exactly
``${key}`` is replaced by the parameter's value. A parameter is either a plain value or a
mapping tried in this order: the exact pool name, then the ``regexp:<re>`` keys in file order
(``re.search`` against the pool name), then ``default``. Placeholders without a value, such
as ``${idc}`` in refer groups, are left untouched.
"""

from __future__ import annotations

import copy
import os
import re
from typing import Any

from motanmesh.config.build import build_config
from motanmesh.config.document import Document, read_yaml
from motanmesh.config.errors import ConfigError
from motanmesh.config.model import Config
from motanmesh.config.values import describe

__all__ = ["load_config"]

_PLACEHOLDER = re.compile(r"\$\{([^{}]+)\}\Z")
_DYNAMIC = "dynamic-param"
_IMPORT_REFER = "import-refer"
_IMPORT_LOCATION = "import-http-location"


def load_config(path: str | os.PathLike[str], *, pool: str = "", application: str = "") -> Config:
    """Read, merge, substitute and validate; raise ``ConfigError`` on any problem."""
    source = os.fspath(path)
    if os.path.isdir(source):
        if not pool and not application:
            raise ConfigError(
                source, "", "is a directory; directory (pool) mode needs -pool or -application"
            )
        application = application or pool.split("-", maxsplit=1)[0]
        doc = _load_pool(source, pool, application)
    else:
        doc = Document(source)
        doc.merge_file(source, read_yaml(source))
    _apply_dynamic_params(doc, pool)
    return build_config(doc, pool=pool, application=application)


def _load_pool(root: str, pool: str, application: str) -> Document:
    doc = Document(root)
    seen_locations: set[str] = set()

    def step(parts: tuple[str, ...], imports: str | None) -> None:
        file = os.path.join(root, *parts)
        if not os.path.isfile(file):
            return
        data = read_yaml(file)
        if imports is not None:
            _import(doc, root, file, data, imports, seen_locations)
        doc.merge_file(file, data)

    step(("basic.yaml",), None)
    step(("http", "service", f"{application}.yaml"), _IMPORT_LOCATION)
    if pool:
        step(("http", "pools", f"{pool}.yaml"), _IMPORT_LOCATION)
    step(("applications", f"{application}.yaml"), _IMPORT_REFER)
    if pool:
        parts = pool.split("-")
        for i in range(1, len(parts) + 1):
            step(("pools", "-".join(parts[:i]) + ".yaml"), None)
    if not doc.files:
        raise ConfigError(
            root,
            "",
            f"no configuration files found for pool {pool!r} (application {application!r})",
        )
    return doc


def _import(
    doc: Document,
    root: str,
    file: str,
    data: dict[str, Any],
    section: str,
    seen_locations: set[str],
) -> None:
    names = data.get(section)
    if names is None:
        return
    if not isinstance(names, list):
        raise ConfigError(file, (section,), f"expected a list of names, got {describe(names)}")
    subdir = ("services",) if section == _IMPORT_REFER else ("http", "location")
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise ConfigError(file, (section, i), f"expected a file name, got {describe(name)}")
        if section == _IMPORT_LOCATION:
            if name in seen_locations:
                continue
            seen_locations.add(name)
        target = os.path.join(root, *subdir, f"{name}.yaml")
        if not os.path.isfile(target):
            doc.warnings.append(f"{file}: {section}[{i}]: {target} not found; skipped")
            continue
        imported = read_yaml(target)
        _import(doc, root, target, imported, _IMPORT_LOCATION, seen_locations)
        doc.merge_file(target, imported)


def _apply_dynamic_params(doc: Document, pool: str) -> None:
    section = doc.data.get(_DYNAMIC)
    if section is None:
        return
    if not isinstance(section, dict):
        raise doc.error((_DYNAMIC,), f"expected a mapping, got {describe(section)}")
    values: dict[str, Any] = {}
    for key, spec in section.items():
        found, value = _pick(doc, key, spec, pool)
        if found:
            values[key] = value
    if values:
        for name, item in doc.data.items():
            if name != _DYNAMIC:
                doc.data[name] = _substitute(item, values)


def _pick(doc: Document, key: str, spec: Any, pool: str) -> tuple[bool, Any]:
    if not isinstance(spec, dict):
        return True, spec
    if pool and pool in spec:
        return True, spec[pool]
    for choice, value in spec.items():
        if not choice.startswith("regexp:"):
            continue
        try:
            pattern = re.compile(choice[len("regexp:") :])
        except re.error as exc:
            raise doc.error((_DYNAMIC, key, choice), f"invalid regular expression: {exc}") from None
        if pool and pattern.search(pool):
            return True, value
    if "default" in spec:
        return True, spec["default"]
    return False, None


def _substitute(value: Any, values: dict[str, Any]) -> Any:
    if isinstance(value, str):
        m = _PLACEHOLDER.match(value)
        if m is not None and m.group(1) in values:
            return copy.deepcopy(values[m.group(1)])
        return value
    if isinstance(value, dict):
        return {k: _substitute(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, values) for v in value]
    return value
