"""Typed access to raw config values (the engine's text) with the defaults of :data:`KEYS`."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import TypeVar

from infra.config.checks import ascii_integer
from infra.config.keys import KEYS, NAMESPACE
from infra.enums import Cloud, Edition, Environment
from infra.errors import ConfigError

__all__ = ["Reader", "cidr", "fix"]

_Choice = TypeVar("_Choice", Cloud, Environment, Edition)


def fix(key: str, example: str) -> str:
    return f"pulumi config set {key} {example}"


def cidr(key: str, value: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value.strip(), strict=True)
    except ValueError:
        raise ConfigError(
            key, value, "an IPv4 CIDR such as 10.40.0.0/16 (host bits zero)", fix(key, "10.40.0.0/16")
        ) from None


class Reader:
    """One stack's raw values, read key by key; every read that fails raises ConfigError."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = values
        self.specs = {spec.name: spec for spec in KEYS}

    def raw(self, key: str) -> str | None:
        value = self.values.get(f"{NAMESPACE}:{key}")
        return None if value is None else str(value)

    def text(self, key: str) -> str:
        value = self.raw(key)
        default = self.specs[key].default
        return str(default) if value is None else value.strip()

    def integer(self, key: str, low: int, high: int) -> int:
        value = self.raw(key)
        if value is None:
            default = self.specs[key].default
            assert isinstance(default, int)
            return default
        number = ascii_integer(value)
        if number is None:
            allowed = f"a whole number from {low} to {high} in ASCII digits (no '_', no other scripts)"
            raise ConfigError(key, value, allowed, fix(key, str(low)))
        if not low <= number <= high:
            raise ConfigError(
                key,
                number,
                f"a whole number from {low} to {high}",
                fix(key, str(min(max(number, low), high))),
            )
        return number

    def boolean(self, key: str) -> bool:
        value = self.raw(key)
        if value is None:
            default = self.specs[key].default
            assert isinstance(default, bool)
            return default
        lowered = value.strip().lower()
        if lowered not in ("true", "false"):
            raise ConfigError(key, value, "true or false", fix(key, "true"))
        return lowered == "true"

    def tristate(self, key: str, production: bool) -> bool:
        value = self.text(key).lower()
        if value == "auto":
            return production
        if value not in ("true", "false"):
            raise ConfigError(key, value, "true, false or auto (auto = true only in production)", fix(key, "auto"))
        return value == "true"

    def array(self, key: str) -> tuple[str, ...]:
        value = self.raw(key)
        if value is None or not value.strip():
            return ()
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
            raise ConfigError(key, value, "a list of strings", f"pulumi config set --path '{key}[0]' <value>")
        return tuple(parsed)

    def choice(self, key: str, kind: type[_Choice], *, upper: bool = False) -> _Choice:
        value = self.text(key)
        try:
            return kind(value.upper() if upper else value.lower())
        except ValueError:
            allowed = " | ".join(member.value for member in kind)
            raise ConfigError(key, value, allowed, fix(key, next(iter(kind)).value)) from None
