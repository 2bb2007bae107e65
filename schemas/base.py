"""Base classes for message payloads and shared field types."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict


def _to_utc(value: datetime) -> datetime:
    return value if value.tzinfo is UTC else value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware datetime, normalised to UTC. Naive datetimes are rejected."""


class Payload(BaseModel):
    """Base of every event and command payload.

    Subclasses set `event_type` (the name on the wire, the class name by default),
    `schema_version` (bumped with an upcaster when an optional field is added) and `kind`
    (``"event"`` for past-tense facts, ``"command"`` for imperatives).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    kind: ClassVar[str] = "event"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "event_type" not in cls.__dict__:
            cls.event_type = cls.__name__

    def partition_key(self) -> str:
        """The Kafka message key for this payload; subclasses override."""
        raise NotImplementedError(f"{type(self).__name__} defines no partition key")
