"""Rules as code: export entry points, rules, templates, named lists, WASM functions and test
cases to a bundle (YAML or JSON files a team keeps in git) and import a bundle back, validated
and atomic.

The bundle (format `verdict-rules/1`) is one mapping, in dependency order:

    format: verdict-rules/1
    named_lists:  [{name, kind, description, items}]
    wasm_functions: [{name, description (if any), abi, export, fuel, max_memory_bytes,
                      timeout_ms, active, wat | module_base64}]
    templates:    [{key, format, description, body}]
    entry_points: [{key, description, critical, active, subject_path, sensitive_paths,
                    context_schema}]
    rules:        [{id, entry_point (key), name, description, priority, active,
                    stop_processing, cooldown_seconds, cooldown_key, metadata, condition,
                    actions, test_cases: [{name, context, expect_match, expect_actions}]}]

Identity: entry points and templates by `key`, named lists by `name`, rules by `id` (the
rule's UUID, kept on import, so re-importing updates the same rule; a hand-written rule
without an id matches the rule of the same entry point and name, or is created), WASM
functions by `name`, test cases by rule and `name`. A missing optional field means the model's
default (a WASM function's limits: the VERDICT settings): a bundle states the whole content of
every object it lists. A WASM function carries its module as the WAT text it was stored from,
else as `module_base64` (the module bytes); exactly one of the two. On import a module is
compared by SHA-256, so an unchanged function gets no new version. Sections are sorted (rules
by entry point, priority, name, id; the others by identity) and JSON values inside (conditions,
schemas) have sorted keys, so the files diff well.

On disk (`write_bundle` / `read_bundle`): a `.json` file is JSON, anything else YAML; a
directory holds `_shared.yaml` (named lists, WASM functions and templates) and one
`<entry point>.yaml` per entry point (the entry point and its rules), read back in name order
and merged.

Import writes in section order (lists and functions before the rules that call them) through
the ordinary services (versions, history, compilation, cache invalidation as usual), every
object in its own savepoint inside one transaction, so every problem is collected with its
path in the bundle (`$.rules[3].condition.and[1]`) and then everything is rolled back: all or
nothing. Four-eyes review does not apply: an import is an operator's deploy, so rules of
critical entry points change directly, with the history's change note `rules_import <source>`.
Refusals of the services (e.g. a test case that blocks activation) are reported as import
errors at the rule's path.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import yaml
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from rules_engine import services
from rules_engine.actions import ActionSpecError, registry
from rules_engine.errors import ErrorDetail, InvalidInput, NotFound
from rules_engine.functions import services as function_services
from rules_engine.functions.lists import normalize_items
from rules_engine.functions.models import (
    NamedList,
    WasmFunction,
    default_fuel,
    default_max_memory_bytes,
    default_timeout_ms,
)
from rules_engine.functions.operators import IN_LIST, WASM
from rules_engine.functions.selectors import _named_calls
from rules_engine.json_text import duplicate_key_path
from rules_engine.models import EntryPoint, MessageTemplate, Rule

try:
    from rules_engine import testcases
except ImportError:  # before issue #7's saved test cases: bundles without test cases only
    testcases = None  # type: ignore[assignment]

_T = TypeVar("_T")

BUNDLE_FORMAT = "verdict-rules/1"
SHARED_FILE = "_shared"

# Field order in the files (identity first) and the default of every optional field.
NAMED_LIST_DEFAULTS: dict[str, Any] = {"kind": "strings", "description": "", "items": []}
TEMPLATE_DEFAULTS: dict[str, Any] = {"format": "text", "description": ""}
# The limits default to the settings at import time (see `_wasm_limit_defaults`).
WASM_LIMITS = ("fuel", "max_memory_bytes", "timeout_ms")
WASM_FUNCTION_DEFAULTS: dict[str, Any] = {
    "description": "",
    "abi": WasmFunction.Abi.JSON.value,
    "export": "call",
    **dict.fromkeys(WASM_LIMITS),
    "active": True,
}
WASM_MODULE_FIELDS = ("wat", "module_base64")
ENTRY_POINT_DEFAULTS: dict[str, Any] = {
    "description": "",
    "critical": False,
    "active": True,
    "subject_path": "",
    "sensitive_paths": [],
    "context_schema": {},
}
RULE_DEFAULTS: dict[str, Any] = {
    "description": "",
    "priority": 100,
    "active": True,
    "stop_processing": False,
    "cooldown_seconds": 0,
    "cooldown_key": None,
    "metadata": {},
    "condition": {},
    "actions": [],
}
TEST_CASE_DEFAULTS: dict[str, Any] = {"expect_actions": []}
TEST_CASE_FIELDS = ("context", "expect_match", "expect_actions")

SECTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    # section: (required keys, optional keys with defaults)
    "named_lists": (("name",), NAMED_LIST_DEFAULTS),
    "wasm_functions": (("name",), {**WASM_FUNCTION_DEFAULTS, **dict.fromkeys(WASM_MODULE_FIELDS)}),
    "templates": (("key", "body"), TEMPLATE_DEFAULTS),
    "entry_points": (("key",), ENTRY_POINT_DEFAULTS),
    "rules": (("entry_point", "name"), {"id": None, **RULE_DEFAULTS, "test_cases": []}),
}


class BundleError(InvalidInput):
    """The bundle is refused as a whole; `details` lists every problem with its bundle path."""

    code = "invalid_bundle"


@dataclass(frozen=True)
class Change:
    """What an import does (or would do) to one object: created, updated, unchanged, deleted."""

    kind: str
    key: str
    action: str
    fields: tuple[str, ...] = ()

    def line(self) -> str:
        """One line of the printed report."""
        changed = f" ({', '.join(self.fields)})" if self.fields else ""
        return f"{self.action:<9} {self.kind:<11} {self.key}{changed}"


@dataclass
class ImportReport:
    """The changes of an import, in bundle order; `applied` is False for a dry run."""

    changes: list[Change] = field(default_factory=list)
    dry_run: bool = False

    @property
    def applied(self) -> bool:
        """Whether the changes were committed."""
        return not self.dry_run

    def counts(self) -> dict[str, int]:
        """How many objects were created, updated, unchanged and deleted."""
        counts = dict.fromkeys(("created", "updated", "unchanged", "deleted"), 0)
        for change in self.changes:
            counts[change.action] += 1
        return counts

    def of(self, action: str) -> list[str]:
        """`kind key` of every change with this action (tests and summaries)."""
        return [f"{c.kind} {c.key}" for c in self.changes if c.action == action]

    def lines(self) -> list[str]:
        """The report as printed by `rules_import`: one line per object, then a summary."""
        counts = ", ".join(f"{n} {action}" for action, n in self.counts().items())
        mode = "dry run, nothing written" if self.dry_run else "applied"
        return [c.line() for c in self.changes] + [f"{counts} ({mode})"]


# --- export ----------------------------------------------------------------------------------


def _sorted_json(value: Any) -> Any:
    # Stable key order in nested JSON (PostgreSQL jsonb and SQLite order keys differently).
    if isinstance(value, dict):
        return {str(k): _sorted_json(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [_sorted_json(item) for item in value]
    return value


def _row(obj: Any, names: Iterable[str], first: dict[str, Any]) -> dict[str, Any]:
    row = {**first, **{name: _sorted_json(getattr(obj, name)) for name in names}}
    if isinstance(row.get("actions"), list):
        # An action reads best with its type first, then its params.
        row["actions"] = [
            {"type": a["type"], **a} if isinstance(a, dict) and "type" in a else a
            for a in row["actions"]
        ]
    return row


def _referenced_templates(rules: Sequence[Rule]) -> set[str]:
    keys: set[str] = set()
    for rule in rules:
        for index, spec in enumerate(rule.actions):
            try:
                action = registry.prepare(spec, f"$.actions[{index}]")
            except ActionSpecError:
                continue
            keys.update(action.handler.template_keys(action.params))
    return keys


def export_bundle(*, entry_points: Sequence[str] | None = None) -> dict[str, Any]:
    """The bundle of every entry point (or those keyed in `entry_points`) and their rules.

    With `entry_points`, only the templates, named lists and WASM functions their rules use are
    included.
    Raises NotFound (unknown_entry_point) for a key that does not exist. Writes nothing.
    """
    points = EntryPoint.objects.order_by("key")
    if entry_points is not None:
        wanted = set(entry_points)
        points = points.filter(key__in=wanted)
        missing = sorted(wanted - {ep.key for ep in points})
        if missing:
            raise NotFound("unknown_entry_point", f"no entry point {', '.join(missing)}")
    point_list = list(points)
    rules = list(
        Rule.objects.filter(entry_point__in=point_list)
        .select_related("entry_point")
        .order_by("entry_point__key", "priority", "name", "id")
    )
    templates = MessageTemplate.objects.order_by("key")
    lists = NamedList.objects.order_by("name")
    functions = WasmFunction.objects.order_by("name")
    if entry_points is not None:
        templates = templates.filter(key__in=_referenced_templates(rules))
        used: set[str] = set()
        called: set[str] = set()
        for rule in rules:
            for part in (rule.condition, rule.cooldown_key, rule.actions):
                used.update(_named_calls(part, IN_LIST))
                called.update(_named_calls(part, WASM))
        lists = lists.filter(name__in=used)
        functions = functions.filter(name__in=called)
    cases = _test_cases_by_rule(rules)
    return {
        "format": BUNDLE_FORMAT,
        "named_lists": [_row(item, NAMED_LIST_DEFAULTS, {"name": item.name}) for item in lists],
        "wasm_functions": [_wasm_row(function) for function in functions],
        "templates": [
            _row(item, ("format", "description", "body"), {"key": item.key}) for item in templates
        ],
        "entry_points": [_row(ep, ENTRY_POINT_DEFAULTS, {"key": ep.key}) for ep in point_list],
        "rules": [
            {
                **_row(
                    rule,
                    RULE_DEFAULTS,
                    {"id": str(rule.pk), "entry_point": rule.entry_point.key, "name": rule.name},
                ),
                **({"test_cases": cases.get(rule.pk, [])} if cases is not None else {}),
            }
            for rule in rules
        ],
    }


def _wasm_row(function: WasmFunction) -> dict[str, Any]:
    # WAT when the function was stored from it (it diffs and reviews), else the bytes.
    row: dict[str, Any] = {"name": function.name}
    if function.description:
        row["description"] = function.description
    row.update(
        {name: getattr(function, name) for name in WASM_FUNCTION_DEFAULTS if name != "description"}
    )
    if function.wat:
        row["wat"] = function.wat
    else:
        row["module_base64"] = base64.b64encode(function.module_bytes).decode("ascii")
    return row


def _test_cases_by_rule(rules: Sequence[Rule]) -> dict[Any, list[dict[str, Any]]] | None:
    if testcases is None:
        return None
    found: dict[Any, list[dict[str, Any]]] = {}
    cases = testcases.RuleTestCase.objects.filter(rule__in=rules).order_by("rule_id", "name", "pk")
    for case in cases:
        found.setdefault(case.rule_id, []).append(_row(case, TEST_CASE_FIELDS, {"name": case.name}))
    return found


# --- files -----------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (template bodies diff line by line), no anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        """Never write `&id001` anchors: every value is spelled out where it is used."""
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dumps(bundle: Mapping[str, Any], *, fmt: str = "yaml") -> str:
    """The bundle as text, `fmt` yaml or json; the same bundle always gives the same text."""
    if fmt == "json":
        return json.dumps(bundle, indent=2, ensure_ascii=False) + "\n"
    return yaml.dump(
        dict(bundle),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=1 << 16,  # no folding: one changed string is one changed line
    )


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a mapping that names a key twice (PyYAML keeps the last
    value silently: a rule's condition typed twice would lose its first half)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """The mapping, after checking its keys. Raises ConstructorError at a repeated key."""
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool, type(None))):
                continue  # the safe loader itself refuses an unhashable key
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found the key {key!r} twice",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def loads(text: str, *, fmt: str = "yaml") -> Any:
    """Parse bundle text. Raises BundleError (at `$`, or at the key) when it is not valid
    YAML/JSON or an object names a key twice."""
    try:
        if fmt == "yaml":
            return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506  (a safe loader)
        bundle = json.loads(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise BundleError([{"path": "$", "message": f"not valid {fmt.upper()}: {exc}"}]) from exc
    if (where := duplicate_key_path(text.encode())) is not None:
        raise BundleError([{"path": where, "message": "this key is named twice in one object"}])
    return bundle


def _fmt(path: Path) -> str:
    return "json" if path.suffix.lower() == ".json" else "yaml"


def write_bundle(bundle: Mapping[str, Any], target: Path, *, directory: bool = False) -> list[Path]:
    """Write the bundle to a file (format by extension) or, with `directory`, one YAML file per
    entry point plus `_shared.yaml`; returns the files written. Writes only those files."""
    if not directory:
        target.write_text(dumps(bundle, fmt=_fmt(target)))
        return [target]
    target.mkdir(parents=True, exist_ok=True)
    files = {
        target / f"{SHARED_FILE}.yaml": {
            "format": BUNDLE_FORMAT,
            "named_lists": bundle["named_lists"],
            "wasm_functions": bundle.get("wasm_functions", []),
            "templates": bundle["templates"],
        }
    }
    for ep in bundle["entry_points"]:
        files[target / f"{ep['key']}.yaml"] = {
            "format": BUNDLE_FORMAT,
            "entry_points": [ep],
            "rules": [r for r in bundle["rules"] if r["entry_point"] == ep["key"]],
        }
    for path, part in files.items():
        path.write_text(dumps(part))
    return list(files)


@dataclass
class LoadedBundle:
    """A bundle read from disk; `origins` maps `$.section[i]` to `file: $.section[j]`."""

    bundle: dict[str, Any]
    origins: dict[str, str] = field(default_factory=dict)

    def locate(self, path: str) -> str:
        """The path of a problem in the files it came from."""
        head, sep, rest = path.partition("]")
        origin = self.origins.get(head + sep)
        return origin + rest if origin else path


def read_bundle(source: Path) -> LoadedBundle:
    """Read a bundle file, or merge the `*.yaml|*.yml|*.json` files of a directory in name order.

    Raises BundleError when a file is not valid YAML/JSON or not a mapping.
    """
    if not source.is_dir():
        return LoadedBundle(loads(source.read_text(), fmt=_fmt(source)))
    files = sorted(p for p in source.iterdir() if p.suffix.lower() in (".yaml", ".yml", ".json"))
    merged: dict[str, Any] = {"format": BUNDLE_FORMAT, **{s: [] for s in SECTIONS}}
    loaded = LoadedBundle(merged)
    errors: list[ErrorDetail] = []
    for path in files:
        try:
            part = loads(path.read_text(), fmt=_fmt(path))
        except BundleError as exc:
            errors.extend({"path": f"{path.name}: $", "message": d["message"]} for d in exc.details)
            continue
        if not isinstance(part, dict):
            errors.append({"path": f"{path.name}: $", "message": "a bundle must be a mapping"})
            continue
        for name, value in part.items():
            if name not in SECTIONS:
                merged.setdefault(name, value)  # format and unknown keys: checked on import
                continue
            if not isinstance(value, list):
                errors.append({"path": f"{path.name}: $.{name}", "message": "must be a list"})
                continue
            for index, item in enumerate(value):
                merged_path = f"$.{name}[{len(merged[name])}]"
                loaded.origins[merged_path] = f"{path.name}: $.{name}[{index}]"
                merged[name].append(item)
    if errors:
        raise BundleError(errors)
    return loaded


# --- import ----------------------------------------------------------------------------------


def _shape_errors(bundle: Any) -> list[ErrorDetail]:
    # The structure every later step relies on: sections are lists of mappings with their
    # identity fields, no unknown keys, no duplicates; the content is checked by the services.
    if not isinstance(bundle, dict):
        return [{"path": "$", "message": "a bundle must be a mapping"}]
    errors: list[ErrorDetail] = []
    if bundle.get("format", BUNDLE_FORMAT) != BUNDLE_FORMAT:
        errors.append({"path": "$.format", "message": f"unsupported, expected {BUNDLE_FORMAT}"})
    for name in sorted(set(bundle) - {"format", *SECTIONS}):
        errors.append({"path": f"$.{name}", "message": "unknown section"})
    for section, (required, optional) in SECTIONS.items():
        items = bundle.get(section, [])
        if not isinstance(items, list):
            errors.append({"path": f"$.{section}", "message": "must be a list"})
            continue
        seen: dict[Any, int] = {}
        for index, item in enumerate(items):
            path = f"$.{section}[{index}]"
            if not isinstance(item, dict):
                errors.append({"path": path, "message": "must be a mapping"})
                continue
            for key in sorted(set(item) - {*required, *optional}, key=str):
                errors.append({"path": f"{path}.{key}", "message": "unknown field"})
            for key in required:
                if not isinstance(item.get(key), str) or not item[key]:
                    errors.append({"path": f"{path}.{key}", "message": "required, a string"})
            errors.extend(_json_errors(item, path))
            identity: Any = item.get(required[0])
            if section == "rules":
                identity = (item.get("entry_point"), item.get("name"))
                if item.get("id") is not None:
                    identity = str(item["id"])
                    try:
                        uuid.UUID(identity)
                    except ValueError:
                        errors.append({"path": f"{path}.id", "message": "not a UUID"})
            if isinstance(identity, str | tuple) and identity in seen:
                errors.append(
                    {"path": path, "message": f"duplicate of $.{section}[{seen[identity]}]"}
                )
            elif isinstance(identity, str | tuple):
                seen[identity] = index
            if section == "rules":
                errors.extend(_test_case_shape_errors(item.get("test_cases", []), path))
            if section == "wasm_functions":
                errors.extend(_wasm_module_shape_errors(item, path))
    return errors


def _wasm_module_shape_errors(item: dict[str, Any], path: str) -> list[ErrorDetail]:
    given = [name for name in WASM_MODULE_FIELDS if item.get(name) is not None]
    if len(given) != 1:
        return [{"path": path, "message": "give exactly one of wat and module_base64"}]
    name = given[0]
    if not isinstance(item[name], str) or not item[name]:
        return [{"path": f"{path}.{name}", "message": "must be a non-empty string"}]
    if name == "module_base64":
        try:
            base64.b64decode(item[name], validate=True)
        except binascii.Error as exc:
            return [{"path": f"{path}.{name}", "message": f"not valid base64: {exc}"}]
    return []


def _test_case_shape_errors(cases: Any, rule_path: str) -> list[ErrorDetail]:
    if not isinstance(cases, list):
        return [{"path": f"{rule_path}.test_cases", "message": "must be a list"}]
    errors: list[ErrorDetail] = []
    if cases and testcases is None:
        errors.append({"path": f"{rule_path}.test_cases", "message": "test cases not supported"})
    names: dict[str, int] = {}
    for index, case in enumerate(cases):
        path = f"{rule_path}.test_cases[{index}]"
        if not isinstance(case, dict):
            errors.append({"path": path, "message": "must be a mapping"})
            continue
        for key in sorted(set(case) - {"name", *TEST_CASE_FIELDS}, key=str):
            errors.append({"path": f"{path}.{key}", "message": "unknown field"})
        if not isinstance(case.get("name"), str) or not case["name"]:
            errors.append({"path": f"{path}.name", "message": "required, a string"})
        elif case["name"] in names:
            errors.append(
                {"path": path, "message": f"duplicate name of test_cases[{names[case['name']]}]"}
            )
        else:
            names[case["name"]] = index
        if not isinstance(case.get("expect_match"), bool):
            errors.append({"path": f"{path}.expect_match", "message": "required, true or false"})
        if "context" not in case:
            errors.append({"path": f"{path}.context", "message": "required"})
    return errors


def _json_errors(value: Any, path: str) -> list[ErrorDetail]:
    # YAML can hold dates, sets and non-string keys; only JSON values can be stored.
    if isinstance(value, dict):
        errors: list[ErrorDetail] = []
        for key, item in value.items():
            if not isinstance(key, str):
                errors.append({"path": path, "message": f"key {key!r} is not a string"})
            else:
                errors.extend(_json_errors(item, f"{path}.{key}"))
        return errors
    if isinstance(value, list):
        return [e for i, item in enumerate(value) for e in _json_errors(item, f"{path}[{i}]")]
    if value is None or isinstance(value, str | int | float | bool):
        return []
    return [{"path": path, "message": f"{type(value).__name__} is not a JSON value"}]


@dataclass
class _Importer:
    """One import run: applies sections in dependency order, collecting changes and errors."""

    bundle: dict[str, Any]
    user: services.User
    note: str
    prune: bool
    report: ImportReport
    errors: list[ErrorDetail] = field(default_factory=list)
    # Where each imported rule is in the bundle (by id), to place the final check's failures.
    rule_paths: dict[str, str] = field(default_factory=dict)

    def attempt(self, path: str, write: Callable[[], Any]) -> Any:
        # Each write in its own savepoint: a refused object is undone alone and the import
        # carries on, so one run reports every problem.
        try:
            with transaction.atomic():
                return write()
        except InvalidInput as exc:
            self.errors.extend(
                {"path": path + d["path"].removeprefix("$"), "message": d["message"]}
                for d in exc.details
            )
        except ValidationError as exc:
            self.errors.extend({"path": path, "message": m} for m in exc.messages)
        except NotFound as exc:
            self.errors.append({"path": path, "message": exc.message})
        return None

    def record(self, kind: str, key: str, action: str, fields: Iterable[str] = ()) -> None:
        self.report.changes.append(Change(kind, key, action, tuple(fields)))

    @property
    def audit(self) -> dict[str, Any]:
        """Who makes every write of the import, and its change note (service keywords)."""
        return {"user": self.user, "change_note": self.note}

    def upsert(
        self,
        *,
        kind: str,
        key: str,
        path: str,
        existing: Any,
        data: dict[str, Any],
        create: Callable[[], Any],
        update: Callable[[dict[str, Any]], Any],
        current: Callable[[Any, str], Any] = getattr,
    ) -> Any:
        if existing is None:
            created = self.attempt(path, create)
            if created is not None:
                self.record(kind, key, "created")
            return created
        changed = {n: v for n, v in data.items() if current(existing, n) != v}
        if not changed:
            self.record(kind, key, "unchanged")
            return existing
        updated = self.attempt(path, lambda: update(changed))
        if updated is not None:
            self.record(kind, key, "updated", sorted(changed))
        return updated

    def run(self) -> None:
        for index, item in enumerate(self.bundle.get("named_lists", [])):
            self.named_list(f"$.named_lists[{index}]", item)
        for index, item in enumerate(self.bundle.get("wasm_functions", [])):
            self.wasm_function(f"$.wasm_functions[{index}]", item)
        for index, item in enumerate(self.bundle.get("templates", [])):
            self.template(f"$.templates[{index}]", item)
        for index, item in enumerate(self.bundle.get("entry_points", [])):
            self.entry_point(f"$.entry_points[{index}]", item)
        rules = [(f"$.rules[{i}]", item) for i, item in enumerate(self.bundle.get("rules", []))]
        found = {path: _find_rule(item) for path, item in rules}
        # The cases of existing rules are written before any rule, so the activation gate
        # judges each rule change against the cases the bundle brings, not the old ones.
        for path, item in rules:
            existing = found[path]
            if existing is not None and item.get("test_cases") is not None:
                self.test_cases(path, _rule_key(item), existing, item["test_cases"])
        kept: set[Any] = set()
        for path, item in rules:
            rule = self.rule(path, item, found[path])
            if rule is None:
                continue
            kept.add(rule.pk)
            self.rule_paths[str(rule.pk)] = path
            if found[path] is None and item.get("test_cases") is not None:
                self.test_cases(path, _rule_key(item), rule, item["test_cases"])
        if self.prune:
            self.prune_rules(kept)
        if not self.errors:
            self.check_cases(rules)

    def named_list(self, path: str, item: dict[str, Any]) -> None:
        data = {**NAMED_LIST_DEFAULTS, **item}
        # Compare with the stored (normalised) items, so hand-written lists are not rewritten.
        items, _ = normalize_items(
            data["kind"], data["items"], max_items=int(settings.VERDICT["NAMED_LIST_MAX_ITEMS"])
        )
        existing = NamedList.objects.filter(name=data["name"]).first()
        self.upsert(
            kind="named_list",
            key=data["name"],
            path=path,
            existing=existing,
            data={**data, "items": items if existing is not None else data["items"]},
            create=lambda: function_services.named_list_create(data=data, **self.audit),
            update=lambda changed: function_services.named_list_update(
                named_list=_present(existing), data=changed, **self.audit
            ),
        )

    def wasm_function(self, path: str, item: dict[str, Any]) -> None:
        limits = _wasm_limit_defaults()
        data = {**WASM_FUNCTION_DEFAULTS, **limits, **item}
        for name in WASM_LIMITS:
            if data[name] is None:  # an explicit null: the default too
                data[name] = limits[name]
        # The services take the module as WAT text or as bytes (which clears a stored WAT).
        module_fields: dict[str, Any] = {"wat": data.pop("wat", None) or ""}
        encoded = data.pop("module_base64", None)
        if encoded is not None:
            module_fields["module"] = base64.b64decode(encoded, validate=True)
        data.update(module_fields)
        existing = WasmFunction.objects.filter(name=data["name"]).first()

        def current(function: WasmFunction, name: str) -> Any:
            if name != "module":
                return getattr(function, name)
            stored = function.sha256 or hashlib.sha256(function.module_bytes).hexdigest()
            same = stored == hashlib.sha256(data["module"]).hexdigest()
            return data["module"] if same else function.module_bytes

        def update(changed: dict[str, Any]) -> WasmFunction:
            # WAT and module go together: the service derives one from the other.
            if "wat" in changed or "module" in changed:
                changed = {**changed, **module_fields}
            return function_services.wasm_function_update(
                function=_present(existing), data=changed, **self.audit
            )

        self.upsert(
            kind="wasm_function",
            key=data["name"],
            path=path,
            existing=existing,
            data=data,
            current=current,
            create=lambda: function_services.wasm_function_create(data=data, **self.audit),
            update=update,
        )

    def template(self, path: str, item: dict[str, Any]) -> None:
        data = {**TEMPLATE_DEFAULTS, **item}
        existing = MessageTemplate.objects.filter(key=data["key"]).first()
        self.upsert(
            kind="template",
            key=data["key"],
            path=path,
            existing=existing,
            data=data,
            create=lambda: services.template_create(data=data, **self.audit),
            update=lambda changed: services.template_update(
                template=_present(existing), data=changed, **self.audit
            ),
        )

    def entry_point(self, path: str, item: dict[str, Any]) -> None:
        data = {**ENTRY_POINT_DEFAULTS, **item}
        existing = EntryPoint.objects.filter(key=data["key"]).first()
        self.upsert(
            kind="entry_point",
            key=data["key"],
            path=path,
            existing=existing,
            data=data,
            create=lambda: services.entry_point_create(data=data, **self.audit),
            update=lambda changed: services.entry_point_update(
                entry_point=_present(existing), data=changed, **self.audit
            ),
        )

    def rule(self, path: str, item: dict[str, Any], existing: Rule | None) -> Rule | None:
        content = {**RULE_DEFAULTS, **item}
        content.pop("test_cases", None)
        rule_id = content.pop("id", None)
        entry_point = EntryPoint.objects.filter(key=content["entry_point"]).first()
        if entry_point is None:
            message = f"no entry point {content['entry_point']!r}"
            self.errors.append({"path": f"{path}.entry_point", "message": message})
            return None
        data = {**content, "entry_point": entry_point}
        rule: Rule | None = self.upsert(
            kind="rule",
            key=_rule_key(item),
            path=path,
            existing=existing,
            data=data,
            current=_rule_field,
            create=lambda: services.rule_create(
                data=data,
                **self.audit,
                rule_id=uuid.UUID(str(rule_id)) if rule_id is not None else None,
            ),
            update=lambda changed: services.rule_update(
                rule=_present(existing), data=changed, **self.audit
            ),
        )
        return rule

    def test_cases(self, path: str, rule_key: str, rule: Rule, cases: list[Any]) -> None:
        if testcases is None:
            return
        stored = {case.name: case for case in testcases.RuleTestCase.objects.filter(rule=rule)}
        for index, item in enumerate(cases):
            data = {**TEST_CASE_DEFAULTS, **item}
            existing = stored.pop(data["name"], None)
            self.upsert(
                kind="test_case",
                key=f"{rule_key}/{data['name']}",
                path=f"{path}.test_cases[{index}]",
                existing=existing,
                data=data,
                create=partial(testcases.rule_test_case_create, rule=rule, data=data),
                update=partial(_test_case_update, existing),
            )
        if self.prune:
            for name, case in sorted(stored.items()):
                self.attempt(path, partial(testcases.rule_test_case_delete, test_case=case))
                self.record("test_case", f"{rule_key}/{name}", "deleted")

    def prune_rules(self, kept: set[Any]) -> None:
        keys = [ep.get("key") for ep in self.bundle.get("entry_points", [])]
        doomed = (
            Rule.objects.filter(entry_point__key__in=keys)
            .exclude(pk__in=kept)
            .select_related("entry_point")
            .order_by("entry_point__key", "priority", "name", "id")
        )
        for rule in doomed:
            key = f"{rule.entry_point.key}/{rule.name}"
            self.attempt(
                f"$.rules (prune {key})",
                partial(services.rule_delete, rule=rule, **self.audit),
            )
            self.record("rule", key, "deleted")

    def check_cases(self, rules: list[tuple[str, dict[str, Any]]]) -> None:
        # The gate judges each write on its own; this judges the result: every case of every
        # entry point the bundle's rules are on, with the rule sets as imported (a new rule's
        # cases are written after it, so no gate has run them yet).
        if testcases is None:
            return
        cases_at = {
            (path, str(case.get("name"))): f"{path}.test_cases[{index}]"
            for path, item in rules
            for index, case in enumerate(item.get("test_cases") or [])
        }
        keys = sorted({str(item["entry_point"]) for _, item in rules})
        for entry_point in EntryPoint.objects.filter(key__in=keys).order_by("key"):
            for result in testcases.rule_tests_run(entry_point=entry_point).failures:
                rule_path = self.rule_paths.get(result.rule_id, "$.rules")
                path = cases_at.get((rule_path, result.case), rule_path)
                detail = result.error_detail()
                self.errors.append({"path": path, "message": detail["message"]})


def _wasm_limit_defaults() -> dict[str, int]:
    # Read when importing, so a bundle without limits gets this deployment's settings.
    return {
        "fuel": default_fuel(),
        "max_memory_bytes": default_max_memory_bytes(),
        "timeout_ms": default_timeout_ms(),
    }


def _find_rule(item: Mapping[str, Any]) -> Rule | None:
    # The stored rule a bundle item describes: by id, else by entry point and name.
    if item.get("id") is not None:
        return Rule.objects.filter(pk=item["id"]).select_related("entry_point").first()
    return Rule.objects.filter(entry_point__key=item["entry_point"], name=item["name"]).first()


def _rule_key(item: Mapping[str, Any]) -> str:
    return f"{item['entry_point']}/{item['name']}"


def _rule_field(rule: Rule, name: str) -> Any:
    # The entry point compares as a row (the bundle names it by key, resolved before).
    return rule.entry_point if name == "entry_point" else getattr(rule, name)


def _present(obj: _T | None) -> _T:
    # upsert calls `update` only for a stored object.
    assert obj is not None
    return obj


def _test_case_update(case: Any, changed: dict[str, Any]) -> Any:
    assert testcases is not None
    return testcases.rule_test_case_update(test_case=case, data=changed)


def import_bundle(
    *,
    bundle: Any,
    user: services.User = None,
    dry_run: bool = False,
    prune: bool = False,
    source: str = "",
    locate: Callable[[str], str] | None = None,
) -> ImportReport:
    """Make the database hold what the bundle states, through the services, all or nothing.

    Creates and updates (only the changed fields; unchanged objects are not touched, so no new
    versions) named lists, WASM functions, templates, entry points, rules (keeping their ids)
    and test cases; with `prune`, deletes the rules of the bundle's entry points, and the test
    cases of its rules, that the bundle does not list (entry points, templates, lists and
    functions are never deleted). History notes say `rules_import <source>`. Raises BundleError
    with every problem and its bundle path (translated by `locate`, e.g. to file names);
    nothing is written then.
    With `dry_run`, reports the same changes and writes nothing.
    """
    where = locate or (lambda path: path)
    shape = _shape_errors(bundle)
    if shape:
        raise BundleError([{**d, "path": where(d["path"])} for d in shape])
    report = ImportReport(dry_run=dry_run)
    importer = _Importer(
        bundle=bundle,
        user=user,
        note=f"rules_import {source}".strip()[:100],
        prune=prune,
        report=report,
    )
    with transaction.atomic():
        importer.run()
        if importer.errors or dry_run:
            transaction.set_rollback(True)
    if importer.errors:
        raise BundleError([{**d, "path": where(d["path"])} for d in importer.errors])
    return report
