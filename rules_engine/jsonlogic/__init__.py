"""JSONLogic for Verdict: a compiler with json-logic-js 2.x semantics.

Rules are compiled once into nested closures (:func:`compile`) and then evaluated many times::

    from rules_engine.jsonlogic import compile, to_json

    adult_in_eu = compile({"and": [{">=": [{"var": "user.age"}, 18]},
                                   {"in": [{"var": "country"}, ["DE", "FR"]]}]})
    adult_in_eu({"user": {"age": 30}, "country": "DE"})  # True

A whole entry point's rules compile into one evaluator (:func:`compile_ruleset`, see
:mod:`.ruleset`): one result per rule, each equal to ``compile(rule)(data)``, computed by
generated Python that looks every ``var`` path up once per context, shares equal subtrees
between rules and skips, through an index, rules whose leading ``==``/``===``/``in`` test on a
variable cannot pass::

    ruleset = compile_ruleset(rules)
    ruleset(context)                             # [value, ...]; raises like the first failing rule
    ruleset.evaluate(context, errors="collect")  # a RuleError in place of each failing rule
    ruleset.reads                                # the context paths the rules read

Semantics follow json-logic-js 2.x (the reference implementation behind jsonlogic.com),
including JavaScript coercions. Policies worth knowing:

* Numbers: arithmetic results are ``float`` (JavaScript numbers are doubles). Division by zero
  gives ``inf``/``-inf`` and ``0/0`` NaN, exactly like JavaScript, so ``{">": [{"/": [1, 0]},
  5]}`` is true. :func:`to_json` renders NaN/±Infinity as ``null`` (JSON.stringify does the
  same) and integral floats below 2**53 as ints.
* ``undefined`` (only degenerate rules produce it, e.g. ``{"and": []}``) is
  :data:`UNDEFINED` internally; a top-level result of ``undefined`` is returned as ``None``.
* Safety: ``var`` only indexes dicts by key and lists/strings by canonical integer index; no
  operator reaches attributes, imports, I/O or Python callables other than the functions
  registered in :mod:`rules_engine.functions`. json-logic-js's removed ``method`` operator is an
  unknown operator here, as in 2.x. JavaScript prototype properties (``length``,
  ``constructor``, ...) are therefore not readable through ``var``.
* Python ints beyond 2**53 keep their exact value when only compared (JavaScript would round
  them to doubles first); arithmetic rounds them like JavaScript.
"""

from __future__ import annotations

from . import limits
from .compiler import DEFAULT_MAX_DEPTH, DEFAULT_MAX_NODES, Compiled, apply, compile
from .errors import (
    JsonLogicBudgetError,
    JsonLogicCompileError,
    JsonLogicError,
    JsonLogicLimitError,
    JsonLogicRuntimeError,
)
from .ruleset import CompiledRuleset, RuleError, compile_ruleset
from .values import UNDEFINED, to_json, truthy

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_NODES",
    "UNDEFINED",
    "Compiled",
    "CompiledRuleset",
    "JsonLogicBudgetError",
    "JsonLogicCompileError",
    "JsonLogicError",
    "JsonLogicLimitError",
    "JsonLogicRuntimeError",
    "RuleError",
    "apply",
    "compile",
    "compile_ruleset",
    "limits",
    "to_json",
    "truthy",
]
