"""A plugin module for tests: custom JSONLogic functions a worker loads by `VERDICT_PLUGINS`.

Start a worker with `VERDICT_PLUGINS=tests.support.plugins` to have them; tests that save
rules using them import this module (registering is idempotent, so both may happen).
"""

from __future__ import annotations

import time
from typing import Any

from rules_engine.functions import registry


def test_sleep_ms(value: Any, milliseconds: Any = 0) -> Any:
    """Sleep `milliseconds`, then return `value`: makes an action slow enough to kill its worker."""
    time.sleep(max(0.0, float(milliseconds)) / 1000)
    return value


if "test_sleep_ms" not in registry:
    registry.register(
        "test_sleep_ms",
        test_sleep_ms,
        arity=(1, 2),
        description="Tests only: returns its first argument after sleeping the second (ms).",
    )
