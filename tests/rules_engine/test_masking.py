"""Masking of sensitive paths in audit snapshots."""

from typing import Any

from rules_engine.masking import MASK, mask_paths


def test_masks_nested_path_and_leaves_input_untouched():
    # given a context with a card number
    context: dict[str, Any] = {
        "payment": {"card_number": "4111", "method": "card"},
        "user": {"id": 1},
    }
    # when the card path is masked
    masked = mask_paths(context, ["payment.card_number"])
    # then only that value is replaced, in a copy
    assert masked == {"payment": {"card_number": MASK, "method": "card"}, "user": {"id": 1}}
    assert context["payment"]["card_number"] == "4111"


def test_star_masks_every_list_item():
    # given items that each carry a secret
    context = {"items": [{"secret": "a", "n": 1}, {"secret": "b", "n": 2}]}
    # when masked with a wildcard
    masked = mask_paths(context, ["items.*.secret"])
    # then every item's secret is masked
    assert masked == {"items": [{"secret": "***", "n": 1}, {"secret": "***", "n": 2}]}


def test_absent_paths_and_numeric_indexes():
    # given a list and a path that does not exist
    context = {"cards": ["1111", "2222"], "user": None}
    # when masking an index and absent paths
    masked = mask_paths(context, ["cards.1", "user.email", "nothing.here"])
    # then only the existing index is masked
    assert masked == {"cards": ["1111", "***"], "user": None}
