"""API key format, digests and rates: pure helpers shared by services and selectors."""

from __future__ import annotations

import hashlib
import re
import secrets

KEY_HEADER_PREFIX = "Api-Key "
_KIND_TAGS = {"secret": "sk", "publishable": "pk"}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day|s|m|h|d)\s*$")
_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
# Longer values cannot be a key of ours; refusing them early keeps hashing bounded.
MAX_KEY_LENGTH = 100


def key_generate(kind: str) -> tuple[str, str]:
    """A new key and its public prefix: ("vk_sk_3f9a1c2b_<43 random chars>", "vk_sk_3f9a1c2b")."""
    prefix = f"vk_{_KIND_TAGS[kind]}_{secrets.token_hex(4)}"
    return f"{prefix}_{secrets.token_urlsafe(32)}", prefix


def key_digest(raw: str) -> str:
    """The stored digest of a key (hex SHA-256)."""
    return hashlib.sha256(raw.encode()).hexdigest()


def rate_parse(rate: str) -> tuple[int, int] | None:
    """`"100/minute"` -> (100, 60); empty -> None. Raises ValueError for anything else."""
    if not rate or not rate.strip():
        return None
    match = _RATE.match(rate)
    if match is None or int(match.group(1)) < 1:
        raise ValueError(f"rate must look like '100/minute' (second|minute|hour|day), got {rate!r}")
    unit = match.group(2)
    period = _PERIODS[next(name for name in _PERIODS if name.startswith(unit))]
    return int(match.group(1)), period
