"""CleanupStateTable: where each bucket's listing resumes on the next hourly run."""

from __future__ import annotations

from datetime import datetime

from pynamodb.attributes import UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.models import Model

from chalicelib.adapters.dynamodb import bind
from chalicelib.services.shared import Clock

__all__ = ["CursorItem", "bind_cleanup_state_table", "DynamoCursors"]


class CursorItem(Model):
    """Declared once; `bind_cleanup_state_table` names the deployment's table."""

    pk = UnicodeAttribute(hash_key=True)
    value = UnicodeAttribute(null=True)
    updated_at = UTCDateTimeAttribute(null=True)


def bind_cleanup_state_table(*, table: str, region: str) -> type[CursorItem]:
    return bind(CursorItem, table=table, region=region)


class DynamoCursors:
    """Where each bucket's listing resumes (None: at the start)."""

    def __init__(self, model: type[CursorItem], clock: Clock) -> None:
        self._model = model
        self._clock = clock

    def get(self, name: str) -> str | None:
        try:
            return self._model.get(f"cursor#{name}", consistent_read=True).value
        except self._model.DoesNotExist:
            return None

    def put(self, name: str, value: str | None) -> None:
        updated: datetime = self._clock()
        self._model(f"cursor#{name}", value=value, updated_at=updated).save()
