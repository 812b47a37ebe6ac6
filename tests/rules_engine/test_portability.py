"""Rules as code: `rules_export` / `rules_import` bundles (YAML or JSON), validated and atomic,
through the services; export then import into an empty database decides the same."""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from rules_engine import engine, portability, services
from rules_engine.functions import services as function_services
from rules_engine.functions.catalog import catalog
from rules_engine.functions.models import NamedList, WasmFunction
from rules_engine.functions.sandbox import module_from_source
from rules_engine.models import EntryPoint, MessageTemplate, Rule, RuleTestCase
from rules_engine.portability import BundleError
from rules_engine.testcases import rule_test_case_create

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
BLOCKED = {"in_list": ["blocked_emails", {"var": "user.email"}]}


@pytest.fixture
def world(demo: EntryPoint, demo_context: dict[str, Any]) -> EntryPoint:
    """The demo (checkout and order.created) plus a named list, a rule using it, and a case."""
    function_services.named_list_create(
        data={"name": "blocked_emails", "items": ["eve@example.com", "mallory@example.com"]}
    )
    blocked = services.rule_create(
        data={
            "name": "Blocked customers",
            "entry_point": demo,
            "priority": 5,
            "condition": BLOCKED,
            "actions": [{"type": "display_message", "params": {"template": "free-shipping"}}],
            "stop_processing": True,
            "metadata": {"owner": "fraud", "ticket": 12},
        }
    )
    eve = copy.deepcopy(demo_context)
    eve["user"]["email"] = "eve@example.com"
    rule_test_case_create(
        rule=blocked,
        data={
            "name": "eve is blocked",
            "context": eve,
            "expect_match": True,
            "expect_actions": ["display_message"],
        },
    )
    return demo


def contexts(demo_context: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    big = copy.deepcopy(demo_context)
    big["cart"]["total"] = 1500
    small = copy.deepcopy(demo_context)
    small["cart"] = {"total": 20, "currency": "EUR", "items": []}
    eve = copy.deepcopy(demo_context)
    eve["user"]["email"] = "eve@example.com"
    order = {"order": {"id": "A-1001", "total": 640}, "customer": {"id": 7}}
    return [
        ("checkout", demo_context),
        ("checkout", big),
        ("checkout", small),
        ("checkout", eve),
        ("order.created", order),
        ("order.created", {**order, "order": {"id": "A-2", "total": 30}}),
    ]


def decisions(cases: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    out = []
    for key, context in cases:
        decision = engine.execute(entry_point=key, context=context, dry_run=True, now=NOW)
        out.append(
            {
                "outcome": decision.outcome,
                "matched": [(r["id"], r["name"]) for r in decision.matched_rules],
                "effects": decision.effects,
                "blocking": decision.blocking,
            }
        )
    return out


def counts() -> dict[str, int]:
    return {
        "entry_points": EntryPoint.objects.count(),
        "templates": MessageTemplate.objects.count(),
        "rules": Rule.objects.count(),
        "lists": NamedList.objects.count(),
        "cases": RuleTestCase.objects.count(),
        "rule_versions": Rule.history.count(),
    }


def empty_database() -> None:
    RuleTestCase.objects.all().delete()
    Rule.objects.all().delete()
    Rule.history.all().delete()
    MessageTemplate.objects.all().delete()
    EntryPoint.objects.all().delete()
    NamedList.objects.all().delete()
    WasmFunction.objects.all().delete()


def export_text(*args: str) -> str:
    out = io.StringIO()
    call_command("rules_export", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def run_import(*args: str) -> str:
    out = io.StringIO()
    call_command("rules_import", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


# --- export ----------------------------------------------------------------------------------


def test_export_is_deterministic_and_lists_everything(world: EntryPoint) -> None:
    # given the demo with a list, a rule using it and a test case
    # when it is exported twice, as YAML and as JSON
    first, second = export_text(), export_text()
    as_json = export_text("--format", "json")

    # then the bytes are identical and the bundle holds every object in a stable order
    assert first == second
    assert as_json == export_text("--format", "json")
    bundle = yaml.safe_load(first)
    assert bundle == json.loads(as_json)
    assert "  - type: display_message\n    params:\n      template: free-shipping\n" in first
    assert bundle["format"] == "verdict-rules/1"
    assert [ep["key"] for ep in bundle["entry_points"]] == ["checkout", "order.created"]
    assert [t["key"] for t in bundle["templates"]] == [
        "age-terms",
        "free-shipping",
        "large-order",
        "loyalty-status",
        "newsletter-question",
        "order-review",
    ]
    assert bundle["named_lists"] == [
        {
            "name": "blocked_emails",
            "kind": "strings",
            "description": "",
            "items": ["eve@example.com", "mallory@example.com"],
        }
    ]
    assert [(r["entry_point"], r["priority"], r["name"]) for r in bundle["rules"]] == [
        ("checkout", 5, "Blocked customers"),
        ("checkout", 10, "Free shipping banner"),
        ("checkout", 20, "Age-restricted items need confirmation"),
        ("checkout", 30, "Large order confirmation"),
        ("checkout", 40, "Newsletter opt-in for returning customers"),
        ("checkout", 50, "Count checkouts and show loyalty"),
        ("order.created", 10, "Count orders, follow up after 5 seconds"),
        ("order.created", 20, "Large orders need a review (once a minute per customer)"),
    ]
    blocked = bundle["rules"][0]
    assert blocked == {
        "id": str(Rule.objects.get(name="Blocked customers").pk),
        "entry_point": "checkout",
        "name": "Blocked customers",
        "description": "",
        "priority": 5,
        "active": True,
        "stop_processing": True,
        "cooldown_seconds": 0,
        "cooldown_key": None,
        "metadata": {"owner": "fraud", "ticket": 12},
        "condition": BLOCKED,
        "actions": [{"type": "display_message", "params": {"template": "free-shipping"}}],
        "test_cases": [
            {
                "name": "eve is blocked",
                "context": RuleTestCase.objects.get().context,
                "expect_match": True,
                "expect_actions": ["display_message"],
            }
        ],
    }
    assert bundle["rules"][1]["test_cases"] == []


def test_export_of_one_entry_point_takes_only_what_its_rules_use(world: EntryPoint) -> None:
    # when only order.created is exported
    bundle = portability.export_bundle(entry_points=["order.created"])

    # then its rules come with the one template they show and no list
    assert [ep["key"] for ep in bundle["entry_points"]] == ["order.created"]
    assert [t["key"] for t in bundle["templates"]] == ["order-review"]
    assert bundle["named_lists"] == []
    assert len(bundle["rules"]) == 2


def test_export_of_an_unknown_entry_point_fails(world: EntryPoint) -> None:
    with pytest.raises(CommandError, match="no entry point nope"):
        export_text("--entry-point", "nope")


# --- import ----------------------------------------------------------------------------------


def test_export_then_import_into_an_empty_database_decides_the_same(
    world: EntryPoint, demo_context: dict[str, Any], tmp_path: Path
) -> None:
    # given the decisions of the demo for a set of contexts, and its export in a file
    cases = contexts(demo_context)
    before = decisions(cases)
    rule_ids = sorted(str(pk) for pk in Rule.objects.values_list("pk", flat=True))
    path = tmp_path / "rules.yaml"
    path.write_text(export_text())
    assert [d["outcome"] for d in before] == [
        "matched",
        "matched",
        "matched",
        "matched",
        "matched",
        "matched",
    ]
    assert [name for _, name in before[3]["matched"]] == ["Blocked customers"]

    # when the database is emptied and the file imported
    empty_database()
    assert counts() == dict.fromkeys(counts(), 0)
    output = run_import(str(path))

    # then every object is created, rules keep their ids, and decisions are identical
    assert output.splitlines()[-1] == "18 created, 0 updated, 0 unchanged, 0 deleted (applied)"
    assert counts() == {
        "entry_points": 2,
        "templates": 6,
        "rules": 8,
        "lists": 1,
        "cases": 1,
        "rule_versions": 8,
    }
    assert sorted(str(pk) for pk in Rule.objects.values_list("pk", flat=True)) == rule_ids
    assert decisions(cases) == before
    # and exporting again gives the same file
    assert export_text() == path.read_text()


def test_reimport_changes_nothing(world: EntryPoint) -> None:
    # given the export of the database
    bundle = portability.export_bundle()
    before = counts()
    versions = dict(Rule.objects.values_list("pk", "version"))

    # when it is imported back
    report = portability.import_bundle(bundle=bundle, source="rules.yaml")

    # then everything is unchanged and no version was added
    assert report.counts() == {"created": 0, "updated": 0, "unchanged": 18, "deleted": 0}
    assert counts() == before
    assert dict(Rule.objects.values_list("pk", "version")) == versions


def test_import_updates_changed_fields_with_the_import_note(world: EntryPoint) -> None:
    # given an export where a rule of the critical checkout changed and a template too
    bundle = portability.export_bundle()
    bundle["rules"][1]["priority"] = 11
    bundle["rules"][1]["condition"] = {">=": [{"var": "cart.total"}, 60]}
    bundle["templates"][0]["body"] = "Please confirm your age."
    rule = Rule.objects.get(name="Free shipping banner")

    # when it is imported
    report = portability.import_bundle(bundle=bundle, source="rules/prod.yaml")

    # then the rule is a new version directly (an operator's deploy), noted as the import
    assert [c for c in report.changes if c.action == "updated"] == [
        portability.Change("template", "age-terms", "updated", ("body",)),
        portability.Change(
            "rule", "checkout/Free shipping banner", "updated", ("condition", "priority")
        ),
    ]
    rule.refresh_from_db()
    assert (rule.version, rule.priority) == (2, 11)
    latest = rule.history.latest()
    assert latest.history_change_reason == "rules_import rules/prod.yaml"
    assert MessageTemplate.objects.get(key="age-terms").body == "Please confirm your age."


def test_a_bundle_with_two_errors_reports_both_paths_and_writes_nothing(
    world: EntryPoint, tmp_path: Path
) -> None:
    # given an export with a broken condition in the third rule and a template that does not
    # compile, and a valid change before them that must not be applied either
    bundle = portability.export_bundle()
    bundle["named_lists"][0]["items"].append("trent@example.com")
    bundle["rules"][3]["condition"] = {"and": [True, {"no_such_op": [1]}]}
    bundle["templates"][1]["body"] = "{% if %}"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(bundle))
    before = counts()

    # when it is imported
    err = io.StringIO()
    with pytest.raises(CommandError, match=r"2 problems in .*broken\.json; nothing was written"):
        call_command("rules_import", str(path), stdout=io.StringIO(), stderr=err)

    # then both problems are reported with their paths, and nothing was written
    paths = [line.split(": ")[0] for line in err.getvalue().splitlines()]
    assert paths == ["$.rules[3].condition.and[1]", "$.templates[1].body"]
    assert counts() == before
    assert NamedList.objects.get().items == ["eve@example.com", "mallory@example.com"]


def test_shape_errors_are_reported_before_anything_is_tried(world: EntryPoint) -> None:
    # given a bundle with an unknown field, a duplicated rule id and a case without expectation
    bundle = portability.export_bundle()
    bundle["entry_points"][0]["colour"] = "red"
    bundle["rules"][2]["id"] = bundle["rules"][1]["id"]
    del bundle["rules"][0]["test_cases"][0]["expect_match"]

    # when it is imported, then every problem is listed with its path
    with pytest.raises(BundleError) as raised:
        portability.import_bundle(bundle=bundle)
    assert [(d["path"], d["message"]) for d in raised.value.details] == [
        ("$.entry_points[0].colour", "unknown field"),
        ("$.rules[0].test_cases[0].expect_match", "required, true or false"),
        ("$.rules[2]", "duplicate of $.rules[1]"),
    ]


@pytest.mark.parametrize(
    ("fmt", "text", "path", "message"),
    [
        (
            "yaml",
            "rules:\n- name: Big\n  condition: {'>': [1, 0]}\n  condition: true\n",
            "$",
            "not valid YAML: while reading a mapping\n"
            '  in "<unicode string>", line 2, column 3:\n'
            "    - name: Big\n"
            "      ^\n"
            "found the key 'condition' twice\n"
            '  in "<unicode string>", line 4, column 3:\n'
            "      condition: true\n"
            "      ^",
        ),
        (
            "json",
            '{"rules": [{"name": "Big", "condition": {">": [1, 0]}, "condition": true}]}',
            "$.rules[0].condition",
            "this key is named twice in one object",
        ),
    ],
)
def test_a_key_written_twice_in_a_file_is_refused_where_it_is(fmt, text, path, message) -> None:
    # given a bundle file whose rule names its condition twice (the last would win silently)
    # when it is read, then it is refused at the repeated key
    with pytest.raises(BundleError) as raised:
        portability.loads(text, fmt=fmt)
    assert raised.value.details == [{"path": path, "message": message}]


def test_a_list_as_a_yaml_key_is_refused_not_a_crash() -> None:
    with pytest.raises(BundleError) as raised:
        portability.loads("? [1, 2]\n: x\n")
    assert raised.value.details[0]["message"].startswith("not valid YAML: while constructing")


def test_dry_run_reports_and_writes_nothing(world: EntryPoint) -> None:
    # given an export with one rule changed and one new rule
    bundle = portability.export_bundle()
    bundle["rules"][6]["active"] = False
    new_rule = {
        "entry_point": "order.created",
        "name": "Tiny orders",
        "condition": {"<": [{"var": "order.total"}, 5]},
    }
    bundle["rules"].append(new_rule)
    before = counts()

    # when it is imported as a dry run
    report = portability.import_bundle(bundle=bundle, dry_run=True)

    # then the report says what would change, and nothing did
    assert report.of("updated") == ["rule order.created/Count orders, follow up after 5 seconds"]
    assert report.of("created") == ["rule order.created/Tiny orders"]
    assert report.lines()[-1] == (
        "1 created, 1 updated, 17 unchanged, 0 deleted (dry run, nothing written)"
    )
    assert counts() == before
    assert Rule.objects.get(name="Count orders, follow up after 5 seconds").active is True


def test_prune_deletes_rules_and_cases_absent_from_the_bundle(world: EntryPoint) -> None:
    # given an export without the large-order rule and without the blocked rule's case
    bundle = portability.export_bundle()
    dropped = bundle["rules"].pop(3)
    assert dropped["name"] == "Large order confirmation"
    bundle["rules"][0]["test_cases"] = []

    # when it is imported without --prune, nothing is deleted
    report = portability.import_bundle(bundle=bundle)
    assert report.counts()["deleted"] == 0
    assert Rule.objects.filter(name="Large order confirmation").exists()

    # when it is imported with --prune
    report = portability.import_bundle(bundle=bundle, prune=True, source="rules.yaml")

    # then the absent rule and case are deleted, with the import note in the history
    assert report.of("deleted") == [
        "test_case checkout/Blocked customers/eve is blocked",
        "rule checkout/Large order confirmation",
    ]
    assert not Rule.objects.filter(name="Large order confirmation").exists()
    assert RuleTestCase.objects.count() == 0
    deletion = Rule.history.filter(id=dropped["id"]).latest()
    assert (deletion.history_type, deletion.history_change_reason) == (
        "-",
        "rules_import rules.yaml",
    )


def test_a_failing_test_case_in_the_bundle_refuses_the_import(world: EntryPoint) -> None:
    # given an export where the blocked rule's case now expects no match (it matches)
    bundle = portability.export_bundle()
    bundle["rules"][0]["test_cases"][0]["expect_match"] = False
    bundle["rules"][0]["test_cases"][0]["expect_actions"] = []
    bundle["rules"][0]["priority"] = 6
    before = counts()

    # when it is imported, then the gate's refusal is reported at the rule, nothing written
    with pytest.raises(BundleError) as raised:
        portability.import_bundle(bundle=bundle)
    assert [d["path"] for d in raised.value.details] == ['$.rules[0].test_cases["eve is blocked"]']
    assert "case 'eve is blocked'" in raised.value.details[0]["message"]
    assert counts() == before
    assert RuleTestCase.objects.get().expect_match is True


def test_new_rule_cases_are_checked_after_the_import(world: EntryPoint) -> None:
    # given a new rule whose own case fails (it never matches the case's context)
    bundle = portability.export_bundle()
    bundle["rules"].append(
        {
            "entry_point": "order.created",
            "name": "Tiny orders",
            "condition": {"<": [{"var": "order.total"}, 5]},
            "test_cases": [
                {
                    "name": "a tiny order",
                    "context": {"order": {"id": "x", "total": 50}, "customer": {"id": 1}},
                    "expect_match": True,
                }
            ],
        }
    )

    # when it is imported, then the failing case is an error at its path; nothing written
    with pytest.raises(BundleError) as raised:
        portability.import_bundle(bundle=bundle)
    assert [d["path"] for d in raised.value.details] == ["$.rules[8].test_cases[0]"]
    assert not Rule.objects.filter(name="Tiny orders").exists()


def test_directory_round_trip(world: EntryPoint, tmp_path: Path) -> None:
    # when the rules are exported to a directory
    target = tmp_path / "rules"
    call_command("rules_export", "-o", f"{target}/", stdout=io.StringIO(), stderr=io.StringIO())

    # then there is one file per entry point and one shared file, and re-import is unchanged
    assert sorted(p.name for p in target.iterdir()) == [
        "_shared.yaml",
        "checkout.yaml",
        "order.created.yaml",
    ]
    output = run_import(str(target), "--dry-run")
    assert output.splitlines()[-1] == (
        "0 created, 0 updated, 18 unchanged, 0 deleted (dry run, nothing written)"
    )

    # and a problem is located in its file
    checkout = yaml.safe_load((target / "checkout.yaml").read_text())
    checkout["rules"][2]["priority"] = "high"
    (target / "checkout.yaml").write_text(yaml.safe_dump(checkout))
    with pytest.raises(BundleError) as raised:
        portability.import_bundle(
            bundle=(loaded := portability.read_bundle(target)).bundle, locate=loaded.locate
        )
    assert [d["path"] for d in raised.value.details] == ["checkout.yaml: $.rules[2].priority"]


# --- WASM functions --------------------------------------------------------------------------

SCORE_WAT = """
(module
  (func (export "score") (param f64 f64) (result f64)
    local.get 0
    local.get 1
    f64.add))
"""
SCORE = {">=": [{"wasm": ["score", {"var": "cart.total"}, 500]}, 2000]}


@pytest.fixture
def scored(world: EntryPoint) -> WasmFunction:
    """The world plus a numeric WAT function `score` and a checkout rule calling it."""
    function = function_services.wasm_function_create(
        data={
            "name": "score",
            "description": "cart total plus a bonus",
            "wat": SCORE_WAT,
            "export": "score",
            "abi": "numeric",
            "fuel": 50_000,
            "timeout_ms": 40,
        }
    )
    services.rule_create(
        data={
            "name": "High score",
            "entry_point": world,
            "priority": 1,
            "condition": SCORE,
            "actions": [{"type": "display_message", "params": {"template": "large-order"}}],
        }
    )
    return function


def test_export_lists_a_wat_function_as_its_text(scored: WasmFunction) -> None:
    # when everything, then only checkout, then only order.created is exported
    bundle = portability.export_bundle()
    checkout = portability.export_bundle(entry_points=["checkout"])
    order = portability.export_bundle(entry_points=["order.created"])

    # then the function is in the bundle as its WAT, with its limits, where its rule goes
    assert bundle["wasm_functions"] == [
        {
            "name": "score",
            "description": "cart total plus a bonus",
            "abi": "numeric",
            "export": "score",
            "fuel": 50_000,
            "max_memory_bytes": scored.max_memory_bytes,
            "timeout_ms": 40,
            "active": True,
            "wat": SCORE_WAT,
        }
    ]
    assert list(bundle)[:3] == ["format", "named_lists", "wasm_functions"]
    assert checkout["wasm_functions"] == bundle["wasm_functions"]
    assert order["wasm_functions"] == []


def test_a_rule_calling_a_wat_function_imports_into_an_empty_database(
    scored: WasmFunction, demo_context: dict[str, Any], tmp_path: Path
) -> None:
    # given the decisions with the function and the export in a file
    cases = contexts(demo_context)
    before = decisions(cases)
    assert before[1]["matched"][0][1] == "High score"  # total 1500 + 500
    assert "High score" not in [name for _, name in before[0]["matched"]]
    path = tmp_path / "rules.yaml"
    path.write_text(export_text())

    # when the database is emptied (and the loaded functions forgotten) and the file imported
    empty_database()
    catalog.clear()
    output = run_import(str(path))

    # then the function is created from its WAT before the rule, and decisions are identical
    assert output.splitlines()[0] == "created   named_list  blocked_emails"
    assert output.splitlines()[1] == "created   wasm_function score"
    assert output.splitlines()[-1] == "20 created, 0 updated, 0 unchanged, 0 deleted (applied)"
    function = WasmFunction.objects.get()
    assert (function.name, function.wat, function.export, function.abi) == (
        "score",
        SCORE_WAT,
        "score",
        "numeric",
    )
    assert (function.fuel, function.timeout_ms, function.version) == (50_000, 40, 1)
    assert function.sha256 == scored.sha256
    assert decisions(cases) == before
    assert export_text() == path.read_text()


def test_a_module_uploaded_as_bytes_round_trips_as_base64(world: EntryPoint) -> None:
    # given a function uploaded as module bytes (no WAT kept)
    binary = module_from_source(SCORE_WAT)
    function_services.wasm_function_create(
        data={"name": "score", "module": binary, "export": "score", "abi": "numeric"}
    )

    # when it is exported, JSON-dumped, and imported into an empty database
    bundle = json.loads(portability.dumps(portability.export_bundle(), fmt="json"))
    (row,) = bundle["wasm_functions"]
    empty_database()
    report = portability.import_bundle(bundle=bundle, source="rules.json")

    # then the bundle holds the bytes as base64 and the same module comes back
    assert "wat" not in row and "description" not in row
    assert row["module_base64"] == base64.b64encode(binary).decode("ascii")
    assert "wasm_function score" in report.of("created")
    function = WasmFunction.objects.get()
    assert function.module_bytes == binary
    assert function.wat == ""
    assert function.sha256 == hashlib.sha256(binary).hexdigest()


def test_reimport_leaves_functions_unchanged_without_a_new_version(
    scored: WasmFunction,
) -> None:
    # given a second function stored as bytes, and the export of the database
    function_services.wasm_function_create(
        data={
            "name": "bonus",
            "module": module_from_source(SCORE_WAT),
            "export": "score",
            "abi": "numeric",
        }
    )
    bundle = portability.export_bundle()
    history = WasmFunction.history.count()

    # when it is imported back
    report = portability.import_bundle(bundle=bundle, source="rules.yaml")

    # then both functions are unchanged and no version or history row was added
    assert report.counts() == {"created": 0, "updated": 0, "unchanged": 21, "deleted": 0}
    assert [c for c in report.of("unchanged") if c.startswith("wasm_function")] == [
        "wasm_function bonus",
        "wasm_function score",
    ]
    assert dict(WasmFunction.objects.values_list("name", "version")) == {"bonus": 1, "score": 1}
    assert WasmFunction.history.count() == history


def test_a_changed_function_is_updated_and_a_bad_module_reported_at_its_path(
    scored: WasmFunction,
) -> None:
    # given the export with a new limit for score, and a second function with a broken module
    bundle = portability.export_bundle()
    bundle["wasm_functions"][0]["fuel"] = 60_000
    bundle["wasm_functions"].append(
        {"name": "broken", "module_base64": base64.b64encode(b"not wasm").decode("ascii")}
    )

    # when it is imported, then the broken module is refused at its path and nothing written
    with pytest.raises(BundleError) as refused:
        portability.import_bundle(bundle=bundle)
    assert [d["path"] for d in refused.value.details] == ["$.wasm_functions[1].module"]
    assert WasmFunction.objects.get(name="score").fuel == 50_000

    # and without it, only the fuel changes, as a new version
    bundle["wasm_functions"].pop()
    report = portability.import_bundle(bundle=bundle)
    assert report.of("updated") == ["wasm_function score"]
    assert [c.fields for c in report.changes if c.action == "updated"] == [("fuel",)]
    assert WasmFunction.objects.get(name="score").version == 2


def test_a_function_needs_exactly_one_module_and_its_limits_default_to_the_settings(
    world: EntryPoint, settings: Any
) -> None:
    # given a function with both WAT and bytes, one with neither, and one with bad base64
    encoded = base64.b64encode(module_from_source(SCORE_WAT)).decode("ascii")
    bad = {
        "format": "verdict-rules/1",
        "wasm_functions": [
            {"name": "both", "wat": SCORE_WAT, "module_base64": encoded},
            {"name": "neither", "export": "score"},
            {"name": "garbled", "module_base64": "no!"},
        ],
    }

    # when it is imported, then every problem is refused by path before anything is written
    with pytest.raises(BundleError) as refused:
        portability.import_bundle(bundle=bad)
    assert [d["path"] for d in refused.value.details] == [
        "$.wasm_functions[0]",
        "$.wasm_functions[1]",
        "$.wasm_functions[2].module_base64",
    ]

    # and a hand-written function without limits gets those of the settings
    settings.VERDICT = {**settings.VERDICT, "WASM_FUEL": 12_345}
    function = {"name": "score", "wat": SCORE_WAT, "export": "score", "abi": "numeric"}
    portability.import_bundle(bundle={"wasm_functions": [function]})
    stored = WasmFunction.objects.get()
    assert (stored.fuel, stored.description, stored.active) == (12_345, "", True)
