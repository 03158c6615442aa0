"""Typed reads of settings from an environment mapping, each failure naming the setting."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it and says what is expected."""


class Reader:
    """Reads typed values from an environment mapping, raising ConfigError with the name."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str, default: str | None = None) -> str:
        value = self._env.get(name, "").strip()
        if value:
            return value
        if default is None:
            raise ConfigError(f"{name} is required but not set")
        return default

    def optional(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def integer(self, name: str, default: int, minimum: int, maximum: int) -> int:
        return int(self._bounded(name, default, minimum, maximum, int, "a whole number"))

    def number(self, name: str, default: float, minimum: float, maximum: float) -> float:
        return self._bounded(name, default, minimum, maximum, float, "a number of seconds")

    def _bounded(self, name: str, default: float, minimum: float, maximum: float,
                 parse: Callable[[str], float], kind: str) -> float:
        raw = self._env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = parse(raw)
        except ValueError:
            raise ConfigError(f"{name} must be {kind}, got {raw!r}") from None
        if not minimum <= value <= maximum:
            raise ConfigError(f"{name} must be between {minimum} and {maximum}, got {value}")
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        raw = self._env.get(name)
        if raw is None:
            return default
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(f"{name} must be true or false, got {raw!r}")

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.text(name, default)
        normalised = value.lower() if name != "LOG_LEVEL" else value.upper()
        if normalised not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        return normalised

    def guid(self, name: str, *, required: bool) -> str | None:
        value = self.text(name) if required else self.optional(name)
        if value is None:
            return None
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ConfigError(f"{name} must be a GUID, got {value!r}") from None

    def csv(self, name: str) -> tuple[str, ...]:
        return tuple(part.strip() for part in self._env.get(name, "").split(",") if part.strip())

    def url(self, name: str, default: str) -> str:
        value = self.text(name, default).rstrip("/")
        parts = urlsplit(value)
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if parts.hostname and (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
            return value
        raise ConfigError(f"{name} must be an https URL (http only on a loopback host), got {value!r}")
