"""Models of custom functions: named lists and user-supplied WebAssembly functions.

Models hold data and constraints only; every write goes through
`rules_engine.functions.services`, which validates (and compiles modules) first and
invalidates the compiled rulesets, since rules bind to these rows when they are compiled.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from simple_history.models import HistoricalRecords

name_validator = RegexValidator(
    r"^[a-z][a-z0-9_]{0,99}$",
    "Use lowercase letters, digits and '_' (start with a letter).",
)


def default_fuel() -> int:
    """The default fuel of a new WASM function (VERDICT["WASM_FUEL"])."""
    return int(settings.VERDICT["WASM_FUEL"])


def default_max_memory_bytes() -> int:
    """The default memory cap of a new WASM function (VERDICT["WASM_MAX_MEMORY_BYTES"])."""
    return int(settings.VERDICT["WASM_MAX_MEMORY_BYTES"])


def default_timeout_ms() -> int:
    """The default wall-clock limit of a new WASM function (VERDICT["WASM_TIMEOUT_MS"])."""
    return int(settings.VERDICT["WASM_TIMEOUT_MS"])


class NamedList(models.Model):
    """A named set of values rules test membership in with `{"in_list": [name, value]}`.

    `kind` fixes how `items` are read: strings (exact match), numbers (numeric equality) or
    ip_ranges (CIDR networks; an address is a member when any network contains it). `version`
    grows by one on every change; history keeps every version.
    """

    class Kind(models.TextChoices):
        STRINGS = "strings", "Strings"
        NUMBERS = "numbers", "Numbers"
        IP_RANGES = "ip_ranges", "IP ranges (CIDR)"

    name = models.CharField(max_length=100, unique=True, validators=[name_validator])
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.STRINGS)
    items = models.JSONField(default=list, blank=True)
    description = models.TextField(blank=True)
    version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class WasmFunction(models.Model):
    """A user-supplied WebAssembly function rules call with `{"wasm": [name, arg, ...]}`.

    `module` is the compiled binary (`wat` keeps the text it was made from, when uploaded as
    WAT); `export` names the function called, under the `abi` calling convention (see
    `rules_engine.functions.sandbox`). Each call runs in a fresh store under `fuel`,
    `max_memory_bytes` and `timeout_ms`. Only active functions can be called; `version` grows
    on every change and history keeps every version (module bytes included).
    """

    class Abi(models.TextChoices):
        JSON = "json", "JSON in, JSON out (alloc + call)"
        NUMERIC = "numeric", "Numbers in, one number out"

    name = models.CharField(max_length=100, unique=True, validators=[name_validator])
    description = models.TextField(blank=True)
    module = models.BinaryField()
    wat = models.TextField("WAT source", blank=True)
    # Editable only so history can diff it; the services always compute it.
    sha256 = models.CharField("SHA-256", max_length=64, blank=True)
    export = models.CharField(max_length=100, default="call")
    abi = models.CharField(max_length=16, choices=Abi.choices, default=Abi.JSON)
    active = models.BooleanField(default=True)
    fuel = models.PositiveBigIntegerField(default=default_fuel)
    max_memory_bytes = models.PositiveBigIntegerField(default=default_max_memory_bytes)
    timeout_ms = models.PositiveIntegerField(default=default_timeout_ms)
    version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        verbose_name = "WebAssembly function"

    def __str__(self) -> str:
        return f"{self.name} (v{self.version})"

    @property
    def module_bytes(self) -> bytes:
        """The module as bytes (PostgreSQL hands a BinaryField back as a memoryview)."""
        value: Any = self.module
        return bytes(value) if value is not None else b""
