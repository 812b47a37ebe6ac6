"""Writes of custom functions: named lists and WASM functions, versioned with history.

Each service validates first and writes in one transaction, so a refused change writes
nothing; every change bumps the shared ruleset generation (`rules_engine.cache.invalidate`),
because compiled rules hold the list contents and modules they were compiled with.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from rules_engine import cache
from rules_engine.errors import ErrorDetail, InvalidInput, NotFound
from rules_engine.functions import selectors
from rules_engine.functions.lists import normalize_items
from rules_engine.functions.models import NamedList, WasmFunction
from rules_engine.functions.operators import IN_LIST, WASM
from rules_engine.functions.sandbox import (
    Limits,
    WasmModuleError,
    inspect_module,
    module_from_source,
)
from rules_engine.services import User, _field_errors, _stamp_history

NAMED_LIST_FIELDS = ("name", "kind", "items", "description")
WASM_FUNCTION_FIELDS = (
    "name",
    "description",
    "module",
    "wat",
    "export",
    "abi",
    "active",
    "fuel",
    "max_memory_bytes",
    "timeout_ms",
)


def _in_use(operator: str, name: str, path: str, what: str) -> list[ErrorDetail]:
    rules = selectors.rules_calling(operator=operator, name=name)
    if not rules:
        return []
    names = ", ".join(repr(rule.name) for rule in rules[:5])
    return [{"path": path, "message": f"{what} {name!r} is used by active rules: {names}"}]


# --- named lists -----------------------------------------------------------------------------


def named_list_errors(*, named_list: NamedList, data: Mapping[str, Any]) -> list[ErrorDetail]:
    """Apply `data` to `named_list` (unsaved) and return every problem, as the services check.

    On success the items are replaced by their normalised form (deduplicated, CIDRs in
    canonical form). Refuses renaming a list active rules use. Writes nothing; raises nothing.
    """
    unknown = sorted(set(data) - set(NAMED_LIST_FIELDS))
    if unknown:
        return [{"path": f"$.{name}", "message": "unknown field"} for name in unknown]
    old_name = named_list.name if named_list.pk else None
    for name, value in data.items():
        setattr(named_list, name, value)
    errors: list[ErrorDetail] = []
    try:
        named_list.full_clean(exclude=["items"])
    except ValidationError as exc:
        errors.extend(_field_errors(exc))
    items, item_errors = normalize_items(
        named_list.kind,
        named_list.items,
        max_items=int(settings.VERDICT["NAMED_LIST_MAX_ITEMS"]),
    )
    errors.extend(item_errors)
    if old_name is not None and old_name != named_list.name:
        errors.extend(_in_use(IN_LIST, old_name, "$.name", "list"))
    if not errors:
        named_list.items = items
    return errors


def _named_list_write(
    named_list: NamedList, data: Mapping[str, Any], *, user: User, change_note: str
) -> NamedList:
    errors = named_list_errors(named_list=named_list, data=data)
    if errors:
        raise InvalidInput(errors, code="invalid_named_list")
    _stamp_history(named_list, user=user, change_note=change_note)
    named_list.save()
    cache.invalidate()
    return named_list


@transaction.atomic
def named_list_create(
    *, data: Mapping[str, Any], user: User = None, change_note: str = ""
) -> NamedList:
    """Create a named list at version 1; writes the list and its first history row.

    Items are validated for the kind (IP ranges as CIDR) and deduplicated. Raises
    InvalidInput (invalid_named_list) with every problem and its path; nothing is written.
    """
    return _named_list_write(
        NamedList(version=1), data, user=user, change_note=change_note or "Created"
    )


@transaction.atomic
def named_list_update(
    *, named_list: NamedList, data: Mapping[str, Any], user: User = None, change_note: str = ""
) -> NamedList:
    """Change a named list as a new version (version + 1); history keeps the old one.

    Raises InvalidInput (invalid_named_list), also when renaming a list active rules use.
    """
    locked = NamedList.objects.select_for_update().get(pk=named_list.pk)
    locked.version += 1
    updated = _named_list_write(locked, data, user=user, change_note=change_note or "Updated")
    named_list.refresh_from_db()
    return updated


@transaction.atomic
def named_list_delete(*, named_list: NamedList, user: User = None) -> None:
    """Delete a named list no active rule uses; its history (and the deletion) is kept.

    Raises InvalidInput (invalid_named_list) naming the rules that still use it.
    """
    errors = _in_use(IN_LIST, named_list.name, "$.name", "list")
    if errors:
        raise InvalidInput(errors, code="invalid_named_list")
    _stamp_history(named_list, user=user, change_note="Deleted")
    named_list.delete()
    cache.invalidate()


@transaction.atomic
def named_list_rollback(*, named_list: NamedList, version: int, user: User = None) -> NamedList:
    """Store an older version's content as a new version. Raises NotFound / InvalidInput."""
    record = named_list.history.filter(version=version).order_by("-history_id").first()
    if record is None:
        raise NotFound("unknown_version", f"named list has no version {version}")
    data = {name: getattr(record, name) for name in NAMED_LIST_FIELDS}
    return named_list_update(
        named_list=named_list,
        data=data,
        user=user,
        change_note=f"Rolled back to version {version}",
    )


# --- WASM functions --------------------------------------------------------------------------


def _module_of(function: WasmFunction, data: Mapping[str, Any]) -> list[ErrorDetail]:
    """Set `module`/`wat` from the data: WAT is compiled, bytes kept (and WAT cleared)."""
    wat = data.get("wat")
    module = data.get("module")
    if module is not None and not isinstance(module, (bytes, bytearray, memoryview)):
        return [{"path": "$.module", "message": "module must be bytes"}]
    if wat is not None and not isinstance(wat, str):
        return [{"path": "$.wat", "message": "wat must be text"}]
    try:
        if wat:
            binary = module_from_source(wat)
            if module is not None and bytes(module) != binary:
                return [{"path": "$.wat", "message": "give either the module or its WAT, not both"}]
            function.module, function.wat = binary, wat
        elif module is not None:
            function.module, function.wat = bytes(module), ""
    except WasmModuleError as exc:
        return [{"path": "$.wat", "message": str(exc)}]
    if not function.module_bytes:
        return [{"path": "$.module", "message": "upload a .wasm module or enter WAT"}]
    return []


def wasm_function_errors(*, function: WasmFunction, data: Mapping[str, Any]) -> list[ErrorDetail]:
    """Apply `data` to `function` (unsaved) and return every problem, as the services check.

    Compiles WAT, checks the module (compiles, imports nothing, exports what the ABI needs,
    starts within its limits) and refuses deactivating or renaming a function active rules
    call. Writes nothing; raises nothing.
    """
    unknown = sorted(set(data) - set(WASM_FUNCTION_FIELDS))
    if unknown:
        return [{"path": f"$.{name}", "message": "unknown field"} for name in unknown]
    old_name = function.name if function.pk else None
    was_active = function.active if function.pk else False
    for name, value in data.items():
        if name not in ("module", "wat"):
            setattr(function, name, value)
    errors = _module_of(function, data)
    try:
        function.full_clean(exclude=["module", "wat", "sha256"])
    except ValidationError as exc:
        errors.extend(_field_errors(exc))
    if not errors:
        limits = Limits(function.fuel, function.max_memory_bytes, function.timeout_ms)
        problems = inspect_module(
            function.module_bytes, export=function.export, abi=function.abi, limits=limits
        )
        errors.extend({"path": "$.module", "message": problem} for problem in problems)
    if old_name is not None and was_active and (not function.active or old_name != function.name):
        errors.extend(_in_use(WASM, old_name, "$.active", "WASM function"))
    return errors


def _wasm_function_write(
    function: WasmFunction, data: Mapping[str, Any], *, user: User, change_note: str
) -> WasmFunction:
    errors = wasm_function_errors(function=function, data=data)
    if errors:
        raise InvalidInput(errors, code="invalid_wasm_function")
    function.sha256 = hashlib.sha256(function.module_bytes).hexdigest()
    _stamp_history(function, user=user, change_note=change_note)
    function.save()
    cache.invalidate()
    return function


@transaction.atomic
def wasm_function_create(
    *, data: Mapping[str, Any], user: User = None, change_note: str = ""
) -> WasmFunction:
    """Upload a WASM function at version 1 after checking its module; writes it and history.

    `data` holds `module` (bytes) or `wat` (text, compiled here), `export`, `abi` and the
    limits (defaults from settings). The module must compile, import nothing, export what
    its ABI needs and start within its limits. Raises InvalidInput (invalid_wasm_function)
    with every problem; nothing is written then.
    """
    return _wasm_function_write(
        WasmFunction(version=1), data, user=user, change_note=change_note or "Created"
    )


@transaction.atomic
def wasm_function_update(
    *, function: WasmFunction, data: Mapping[str, Any], user: User = None, change_note: str = ""
) -> WasmFunction:
    """Change a WASM function as a new version (version + 1) after checking it again.

    Raises InvalidInput (invalid_wasm_function), also when deactivating or renaming a
    function active rules call.
    """
    locked = WasmFunction.objects.select_for_update().get(pk=function.pk)
    locked.version += 1
    updated = _wasm_function_write(locked, data, user=user, change_note=change_note or "Updated")
    function.refresh_from_db()
    return updated


@transaction.atomic
def wasm_function_delete(*, function: WasmFunction, user: User = None) -> None:
    """Delete a WASM function no active rule calls; history is kept.

    Raises InvalidInput (invalid_wasm_function) naming the rules that still call it.
    """
    errors = _in_use(WASM, function.name, "$.name", "WASM function")
    if errors:
        raise InvalidInput(errors, code="invalid_wasm_function")
    _stamp_history(function, user=user, change_note="Deleted")
    function.delete()
    cache.invalidate()


@transaction.atomic
def wasm_function_rollback(
    *, function: WasmFunction, version: int, user: User = None
) -> WasmFunction:
    """Store an older version (module included) as a new version. Raises NotFound/InvalidInput."""
    record = function.history.filter(version=version).order_by("-history_id").first()
    if record is None:
        raise NotFound("unknown_version", f"WASM function has no version {version}")
    data = {name: getattr(record, name) for name in WASM_FUNCTION_FIELDS}
    data["module"] = bytes(data["module"])
    return wasm_function_update(
        function=function,
        data=data,
        user=user,
        change_note=f"Rolled back to version {version}",
    )
