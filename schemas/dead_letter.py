"""Dead letters: a message a processor could not handle, with the reason and the original bytes."""

from __future__ import annotations

from pydantic import Field

from schemas.base import Payload, UtcDatetime
from schemas.envelope import register


@register
class MessageDeadLettered(Payload):
    """A message from `original_topic` could not be processed and was set aside.

    Published to ``<original_topic>.dlq``. `value_b64`/`key_b64` hold the original bytes
    (base64) so the message can be inspected and replayed; nothing is dropped silently.
    """

    original_topic: str
    original_partition: int = Field(ge=0)
    original_offset: int = Field(ge=0)
    original_timestamp: UtcDatetime | None = None
    key_b64: str | None = None
    value_b64: str
    error: str = Field(description="Why the message was rejected.")
    processor: str = Field(description="Name of the processor that rejected it.")

    def partition_key(self) -> str:
        return f"{self.original_topic}:{self.original_partition}"
