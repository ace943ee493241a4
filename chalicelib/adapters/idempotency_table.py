"""IdempotencyTable: the first answer to a request with an Idempotency-Key, for replays.

Written in the same transaction as what the request created (`save_remembering`), read back by
`PynamoIdempotencyStore`, and trimmed by the hourly cleanup through expiry-index
(`PynamoExpiringRecords`), because DynamoDB's TTL deletes lazily and moto never does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone

from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.exceptions import DeleteError, PutError, TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamodb import (
    CONDITION_FAILED, answers_throttling, bind, cancellation_codes, condition_failed, connection_of, is_conflict,
    translate_transient,
)
from chalicelib.domain.errors import DependencyUnavailable, KeyAlreadyUsed
from chalicelib.domain.idempotency import IdempotencyRecord, StoredResponse

__all__ = ["IdempotencyItem", "bind_idempotency_table", "save_remembering", "PynamoIdempotencyStore",
           "PynamoExpiringRecords", "ClaimItem", "bind_claims_table", "PynamoOnce"]

# Key of expiry-index (with expires_at): one partition, like the products' catalog-index.
EXPIRY_PARTITION = "all"
_TRANSACTION = 25  # moto's limit for TransactWriteItems (AWS takes 100)


class ExpiryIndex(GlobalSecondaryIndex["IdempotencyItem"]):
    class Meta:
        index_name = "expiry-index"
        projection = KeysOnlyProjection()

    expiry = UnicodeAttribute(hash_key=True)
    expires_at = TTLAttribute(range_key=True)


class IdempotencyItem(Model):
    """Declared once; `bind_idempotency_table` names the deployment's table."""

    pk = UnicodeAttribute(hash_key=True)
    fingerprint = UnicodeAttribute()
    status = NumberAttribute()
    body = UnicodeAttribute()  # the response body as JSON text, replayed verbatim
    expires_at = TTLAttribute()
    expiry = UnicodeAttribute(default=EXPIRY_PARTITION)
    expiry_index: ExpiryIndex


def bind_idempotency_table(*, table: str, region: str) -> type[IdempotencyItem]:
    return bind(IdempotencyItem, table=table, region=region, expiry_index=ExpiryIndex())


def save_remembering(item: Model, remember: IdempotencyRecord, record_cls: type[IdempotencyItem],
                     condition: Condition | None = None) -> None:
    """Save `item` (under `condition`) and the idempotency record in one transaction.

    Raises KeyAlreadyUsed when the key is live (or a concurrent twin is writing it).
    """
    record = record_cls(
        remember.key, fingerprint=remember.fingerprint, status=remember.response.status,
        body=json.dumps(remember.response.body, separators=(",", ":")),
        expires_at=remember.expires_at)
    now = datetime.now(timezone.utc)
    # Same boundary as PynamoIdempotencyStore.get (expired once expires_at <= now; TTL values
    # are whole seconds): if they disagreed, a record expiring this second would be neither
    # replayable nor replaceable.
    key_is_free = record_cls.pk.does_not_exist() | (record_cls.expires_at <= now)
    try:
        with TransactWrite(connection=connection_of(type(item))) as transaction:
            transaction.save(item, condition=condition)
            transaction.save(record, condition=key_is_free)
    except TransactWriteError as exc:
        codes = cancellation_codes(exc)
        if (len(codes) == 2 and codes[1] == CONDITION_FAILED) or is_conflict(exc):
            # The key is live, or a concurrent twin is writing it now: the answer is its answer.
            raise KeyAlreadyUsed(remember.key) from None
        raise


class PynamoIdempotencyStore:
    def __init__(self, model: type[IdempotencyItem]) -> None:
        self._record = model

    @answers_throttling
    def get(self, key: str, now: datetime) -> IdempotencyRecord | None:
        try:
            item = self._record.get(key, consistent_read=True)
        except self._record.DoesNotExist:
            return None
        if item.expires_at <= now:  # TTL deletes lazily (and moto never does)
            return None
        return IdempotencyRecord(
            key=item.pk, fingerprint=item.fingerprint,
            response=StoredResponse(int(item.status), json.loads(item.body)),
            expires_at=item.expires_at)


class PynamoExpiringRecords:
    """The cleanup's view: keys past their expiry, and their conditional deletion."""

    def __init__(self, model: type[IdempotencyItem]) -> None:
        self._model = model

    def expired(self, now: datetime, limit: int) -> list[str]:
        found = self._model.expiry_index.query(EXPIRY_PARTITION, self._model.expires_at <= now, limit=limit,
                                               page_size=limit)
        return [item.pk for item in found]

    def delete(self, keys: Sequence[str], now: datetime) -> int:
        """Conditional deletes, 25 to a transaction; a record renewed since it was listed (its key
        used again) fails the condition, and its batch is redone one record at a time."""
        model = self._model
        still_expired = model.expires_at <= now
        deleted = 0
        for start in range(0, len(keys), _TRANSACTION):
            batch = keys[start:start + _TRANSACTION]
            try:
                with TransactWrite(connection=connection_of(model)) as transaction:
                    for key in batch:
                        transaction.delete(model(key), condition=still_expired)
                deleted += len(batch)
                continue
            except TransactWriteError:
                pass
            for key in batch:
                try:
                    model(key).delete(condition=still_expired)
                    deleted += 1
                except DeleteError as exc:
                    if not condition_failed(exc):
                        raise
        return deleted


class ClaimItem(Model):
    """A claim on doing something once (`PynamoOnce`), in the same table as the replays: its key
    is prefixed (`once#`) so the two never meet, and it expires through the same expiry-index."""

    pk = UnicodeAttribute(hash_key=True)
    state = UnicodeAttribute()  # "claimed" while one caller runs the action, "done" after
    lease_until = NumberAttribute()  # epoch seconds: a claim not finished by then may be taken over
    expires_at = TTLAttribute()
    expiry = UnicodeAttribute(default=EXPIRY_PARTITION)


def bind_claims_table(*, table: str, region: str) -> type[ClaimItem]:
    return bind(ClaimItem, table=table, region=region)


class PynamoOnce:
    """`run_once` under a claim with a lease: a caller that crashes mid-action leaves a claim that
    expires with its lease, and a redelivery then runs the action again.

    Why not Powertools' idempotency utility, which does the same with INPROGRESS records: its
    in-progress record expires only at the Lambda context's deadline, which it must be handed per
    invocation (without it, a crash leaves the key claimed for the whole retention and the action
    never runs); and it keys records by the function's name, so two functions could not share a
    key. This is its one conditional write, keyed by the caller's key.
    """

    def __init__(self, model: type[ClaimItem], *, lease_seconds: int, keep_days: int,
                 clock: Callable[[], datetime]) -> None:
        self._claim = model
        self._lease = lease_seconds
        self._keep = keep_days
        self._now = clock

    def run_once(self, key: str, action: Callable[[], None]) -> bool:
        pk = f"once#{key}"
        now = self._now()
        epoch = int(now.timestamp())
        item = self._claim(pk, state="claimed", lease_until=epoch + self._lease,
                           expires_at=now + timedelta(days=self._keep))
        cls = self._claim
        with translate_transient():
            try:
                item.save(condition=cls.pk.does_not_exist() | ((cls.state == "claimed") & (cls.lease_until < epoch)))
            except PutError as exc:
                if not condition_failed(exc):
                    raise
                current = cls.get(pk, consistent_read=True)
                if current.state == "done":
                    return False
                raise DependencyUnavailable(f"{key} is being done by another caller (claimed until "
                                            f"{int(current.lease_until)})") from exc
        try:
            action()
        except BaseException:
            with translate_transient():
                item.delete(condition=cls.state == "claimed")
            raise
        with translate_transient():
            item.update(actions=[cls.state.set("done")])
        return True
