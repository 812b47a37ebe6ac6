"""Named lists in memory: item validation and membership per kind."""

from __future__ import annotations

from rules_engine.functions.lists import ListMatcher, normalize_items


def test_strings_match_exactly():
    emails = ListMatcher("emails", "strings", ["a@x.io", "b@x.io"])
    assert ("a@x.io" in emails, "A@x.io" in emails, None in emails) == (True, False, False)


def test_numbers_match_numerically_and_as_numeric_strings():
    codes = ListMatcher("codes", "numbers", [7, 2.5])
    assert (7.0 in codes, "7" in codes, 2.5 in codes, True in codes, "x" in codes) == (
        True,
        True,
        True,
        False,
        False,
    )


def test_ip_ranges_contain_addresses_of_either_version():
    ranges = ListMatcher("office", "ip_ranges", ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"])
    assert [
        address in ranges
        for address in [
            "10.255.0.1",
            "11.0.0.1",
            "192.168.1.7",
            "192.168.1.8",
            "2001:db8::5",
            "::ffff:10.1.2.3",
            "not an ip",
            42,
        ]
    ] == [True, False, True, False, True, True, False, False]


def test_items_are_validated_with_their_paths():
    items, errors = normalize_items("ip_ranges", ["10.0.0.0/8", "10.0.0.1/8", 5], max_items=10)
    assert items == ["10.0.0.0/8"]
    assert errors == [
        {"path": "$.items[1]", "message": "not an IP network: 10.0.0.1/8 has host bits set"},
        {"path": "$.items[2]", "message": "must be a CIDR string"},
    ]


def test_duplicates_are_dropped_in_order():
    assert normalize_items("strings", ["b", "a", "b"], max_items=10) == (["b", "a"], [])


def test_too_many_items_are_refused():
    assert normalize_items("numbers", [1, 2, 3], max_items=2) == (
        [],
        [{"path": "$.items", "message": "at most 2 items"}],
    )
