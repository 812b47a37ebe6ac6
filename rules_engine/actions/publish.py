"""`publish`: add a message to a registered Redis stream destination, through the outbox.

    {"type": "publish", "params": {"destination": "orders-stream"}}

The same params and payload as `webhook` (see there); the stream entry has the fields
`delivery_id` and `data` (the payload as JSON), added at most once per delivery.
"""

from __future__ import annotations

from rules_engine.actions.base import registry
from rules_engine.actions.webhook import EgressActionHandler


@registry.register
class Publish(EgressActionHandler):
    """Adds a JSON message to a registered Redis stream destination, through the outbox."""

    type = "publish"
    kind = "redis_stream"
