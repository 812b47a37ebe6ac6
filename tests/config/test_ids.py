"""Random ids from the pooled kernel randomness (config/ids.py)."""

from __future__ import annotations

import os
import re
import uuid

from config import ids

UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def test_new_uuid_is_a_version_4_uuid_in_canonical_form() -> None:
    # when ids are taken across several refills of the pool
    values = [ids.new_uuid() for _ in range(1000)]
    # then each is a version 4, RFC 4122 UUID written as str(uuid.UUID) writes it
    for value in values:
        assert UUID_TEXT.fullmatch(value), value
        parsed = uuid.UUID(value)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, value)
    # and none repeats
    assert len(set(values)) == 1000


def test_new_hex_id_is_a_uuid4_hex() -> None:
    values = [ids.new_hex_id() for _ in range(1000)]
    for value in values:
        parsed = uuid.UUID(hex=value)
        assert (parsed.version, parsed.variant, parsed.hex) == (4, uuid.RFC_4122, value)
    assert len(set(values)) == 1000


def test_a_forked_child_never_hands_out_its_parent_s_next_ids() -> None:
    # given a pool with bytes left in it
    ids.new_uuid()
    read, write = os.pipe()
    # when the process forks and parent and child each take the next ids
    pid = os.fork()
    if pid == 0:  # the child: report its ids, then leave without running the test's teardown
        try:
            os.write(write, ",".join(ids.new_uuid() for _ in range(5)).encode())
        finally:
            os._exit(0)
    os.close(write)
    parents = [ids.new_uuid() for _ in range(5)]
    with os.fdopen(read) as pipe:
        childs = pipe.read().split(",")
    os.waitpid(pid, 0)
    # then they share none
    assert len(childs) == 5
    assert not set(parents) & set(childs)
