"""Boolean switchers: named on/off flags shared by the whole process.

Sources: the config sections ``switcher``/``switchers``, code (:meth:`SwitcherManager.register`),
switcher commands from the registry, and the management API (``/switcher/set``). Only
registered switchers can be set, as in the Go agent.
"""

from __future__ import annotations

from collections.abc import Callable

SwitcherListener = Callable[[str, bool], None]


class SwitcherManager:
    """The switchers of one agent."""

    def __init__(self) -> None:
        self._values: dict[str, bool] = {}
        self._listeners: dict[str, list[SwitcherListener]] = {}

    def register(self, name: str, value: bool) -> None:
        """Add a switcher (an existing one keeps its current value)."""
        self._values.setdefault(name, value)

    def is_registered(self, name: str) -> bool:
        return name in self._values

    def is_open(self, name: str, default: bool = False) -> bool:
        return self._values.get(name, default)

    def get(self, name: str) -> bool | None:
        return self._values.get(name)

    def set(self, name: str, value: bool) -> bool:
        """Set a registered switcher; return whether it exists. Listeners hear changes."""
        if name not in self._values:
            return False
        old = self._values[name]
        self._values[name] = value
        if old != value:
            for listener in self._listeners.get(name, ()):
                listener(name, value)
        return True

    def all(self) -> dict[str, bool]:
        return dict(sorted(self._values.items()))

    def watch(self, name: str, listener: SwitcherListener) -> None:
        self._listeners.setdefault(name, []).append(listener)
