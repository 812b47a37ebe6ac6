"""Named lists in memory: item validation and membership per kind."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

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


@settings(max_examples=300, deadline=None)
@given(
    networks=st.lists(
        st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32)), min_size=1, max_size=20
    ),
    addresses=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=20),
)
def test_ip_range_lookup_agrees_with_checking_every_network(networks, addresses):
    # given random IPv4 networks (overlapping, nested, adjacent) and addresses
    cidrs = [str(ipaddress.ip_network((start, length), strict=False)) for start, length in networks]
    matcher = ListMatcher("nets", "ip_ranges", cidrs)
    parsed = [ipaddress.ip_network(cidr) for cidr in cidrs]
    # a few addresses certainly inside: each network's first and last address
    addresses += [int(n.network_address) for n in parsed] + [
        int(n.broadcast_address) for n in parsed
    ]
    for number in addresses:
        address = ipaddress.ip_address(number)
        # then the per-prefix hash lookup says what a scan of every network says
        assert (str(address) in matcher) == any(address in network for network in parsed)


def test_ip_range_lookups_cost_one_set_probe_per_prefix_length():
    # 10,000 /32s and 10,000 /24s collapse to at most two prefix lengths to probe
    hosts = [f"10.{i // 256}.{i % 256}.1/32" for i in range(10_000)]
    # every other /24, so none merges with its neighbour
    subnets = [f"172.{16 + i // 128}.{(i % 128) * 2}.0/24" for i in range(10_000)]
    matcher = ListMatcher("big", "ip_ranges", hosts + subnets)
    assert [length for length, _ in matcher._v4.prefixes] == [32, 24]
    assert ("10.39.15.1" in matcher, "10.39.15.2" in matcher) == (True, False)
    assert ("172.20.4.77" in matcher, "172.20.5.77" in matcher) == (True, False)
