"""Import jobs in DynamoDB (pynamodb), and the imported products' batch writes.

ImportJobsTable holds, under pk = job id, the job (sk "job") and one item per reported row error
(sk "error#<row>", zero-padded so a Query returns them in row order). The job counts its done
chunks in a number set: one conditional UpdateItem marks a chunk done, adds its counters and
returns the new totals, so exactly one worker sees the last chunk land.
"""

from __future__ import annotations

import functools
import random
import time
from dataclasses import dataclass
from datetime import datetime
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, Iterable

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.attributes import (
    NumberAttribute, NumberSetAttribute, TTLAttribute, UnicodeAttribute, UTCDateTimeAttribute,
)
from pynamodb.exceptions import PutError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection
from pynamodb.models import Model

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

from chalicelib.adapters.dynamodb import bind, condition_failed
from chalicelib.adapters.products_table import ProductItem
from chalicelib.domain.errors import ConditionNotMet, DependencyUnavailable
from chalicelib.domain.imports import FAILED, PENDING, RUNNING, ImportJob, ImportStatus, RowError
from chalicelib.domain.products import Product

__all__ = ["ImportJobItem", "ImportErrorItem", "ImportModels", "bind_import_jobs_table",
           "PynamoImportJobRepository", "DynamoImportWriter", "JOB_KIND"]

JOB_KIND = "job"  # hash key of expiry-index; only job items carry it, so the index is sparse
_JOB_SK = "job"
_ERROR_SK = "error#"
_BATCH_WRITE = 25
_ATTEMPTS = 8  # for unprocessed items; ~6 s of backoff in all before the record is retried


class ExpiryIndex(GlobalSecondaryIndex["ImportJobItem"]):
    class Meta:
        index_name = "expiry-index"
        projection = IncludeProjection(["owner"])

    kind = UnicodeAttribute(hash_key=True)
    expires_at = TTLAttribute(range_key=True)


class ImportJobItem(Model):
    """A job (sk "job"). Declared once; `bind_import_jobs_table` names the deployment's table."""

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=_JOB_SK)
    kind = UnicodeAttribute(default=JOB_KIND)
    owner = UnicodeAttribute()
    status = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    finished_at = UTCDateTimeAttribute(null=True)
    dispatched_at = UTCDateTimeAttribute(null=True)
    notified_at = UTCDateTimeAttribute(null=True)
    etag = UnicodeAttribute(null=True)
    rows_total = NumberAttribute(default=0)
    rows_imported = NumberAttribute(default=0)
    rows_failed = NumberAttribute(default=0)
    chunks_total = NumberAttribute(default=0)
    chunks_done = NumberAttribute(default=0)
    done_chunks = NumberSetAttribute(null=True)
    failure = UnicodeAttribute(null=True)
    failure_row = NumberAttribute(null=True)
    expires_at = TTLAttribute()
    expiry_index: ExpiryIndex


class ImportErrorItem(Model):
    """A row error of a job (sk "error#<row>"), in the same table."""

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    row = NumberAttribute()
    message = UnicodeAttribute()
    expires_at = TTLAttribute()


@dataclass(frozen=True)
class ImportModels:
    job: type[ImportJobItem]
    error: type[ImportErrorItem]


def bind_import_jobs_table(*, table: str, region: str) -> ImportModels:
    """Both item kinds of ImportJobsTable, bound to this deployment's table."""
    return ImportModels(job=bind(ImportJobItem, table=table, region=region, expiry_index=ExpiryIndex()),
                        error=bind(ImportErrorItem, table=table, region=region))


def error_sort_key(row: int) -> str:
    return f"{_ERROR_SK}{row:010d}"


def _to_job(item: ImportJobItem) -> ImportJob:
    return ImportJob(
        job_id=item.pk, owner=item.owner, status=ImportStatus(item.status), created_at=item.created_at,
        updated_at=item.updated_at, rows_total=int(item.rows_total),
        rows_imported=int(item.rows_imported), rows_failed=int(item.rows_failed),
        chunks_total=int(item.chunks_total), chunks_done=int(item.chunks_done),
        done_chunks=frozenset(int(i) for i in item.done_chunks or ()), etag=item.etag,
        dispatched=item.dispatched_at is not None, notified=item.notified_at is not None,
        finished_at=item.finished_at, failure=item.failure,
        errors=(RowError(_int_or_none(item.failure_row), item.failure),) if item.failure else (),
        expires_at=item.expires_at)


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


class PynamoImportJobRepository:
    def __init__(self, models: ImportModels) -> None:
        self._job = models.job
        self._error = models.error

    def add(self, job: ImportJob, *, expires_at: datetime) -> None:
        item = self._job(job.job_id, owner=job.owner, status=job.status, created_at=job.created_at,
                         updated_at=job.updated_at, expires_at=expires_at)
        try:
            item.save(condition=self._job.pk.does_not_exist())
        except PutError as exc:
            if condition_failed(exc):
                raise ConditionNotMet(job.job_id) from None
            raise

    def get(self, job_id: str) -> ImportJob | None:
        try:
            return _to_job(self._job.get(job_id, _JOB_SK, consistent_read=True))
        except self._job.DoesNotExist:
            return None

    def errors(self, job_id: str, limit: int) -> list[RowError]:
        """The job's first `limit` row errors, in row order."""
        found = self._error.query(job_id, self._error.sk.startswith(_ERROR_SK), limit=limit,
                                  page_size=limit, consistent_read=True)
        return [RowError(int(e.row), e.message) for e in found]

    def _update(self, job_id: str, actions: Sequence[Action], condition: Condition) -> ImportJobItem | None:
        """The item after the update, or None when the condition did not hold."""
        item = self._job(job_id, _JOB_SK)
        try:
            item.update(actions=list(actions), condition=condition)
        except UpdateError as exc:
            if condition_failed(exc):
                return None
            raise
        return item

    def start(self, job_id: str, *, etag: str, rows_total: int, chunks_total: int, now: datetime) -> bool:
        """pending -> running with the plan; True also when resuming an unfinished dispatch of
        the same file (so a retried dispatcher publishes again), False otherwise."""
        j = self._job
        resumable = (j.status == RUNNING) & (j.etag == etag) & j.dispatched_at.does_not_exist()
        return self._update(job_id, [
            j.status.set(RUNNING), j.etag.set(etag), j.rows_total.set(rows_total),
            j.chunks_total.set(chunks_total), j.updated_at.set(now),
        ], j.pk.exists() & ((j.status == PENDING) | resumable)) is not None

    def mark_dispatched(self, job_id: str, now: datetime) -> None:
        j = self._job
        self._update(job_id, [j.dispatched_at.set(now)], j.pk.exists())

    def fail(self, job_id: str, message: str, row: int | None, now: datetime) -> bool:
        """Fail a job that has not ended; False when it already had."""
        j = self._job
        actions = [j.status.set(FAILED), j.failure.set(message[:1000]), j.finished_at.set(now),
                   j.updated_at.set(now)]
        if row is not None:
            actions.append(j.failure_row.set(row))
        return self._update(job_id, actions, j.pk.exists() & j.status.is_in(PENDING, RUNNING)) is not None

    def complete_chunk(self, job_id: str, index: int, *, imported: int, failed: int,
                       now: datetime) -> ImportJob | None:
        """Count chunk `index` done, once; the job after it, or None if it was counted already
        (or the job is no longer running)."""
        j = self._job
        item = self._update(job_id, [
            j.done_chunks.add({index}), j.chunks_done.add(1), j.rows_imported.add(imported),
            j.rows_failed.add(failed), j.updated_at.set(now),
        ], (j.status == RUNNING) & ~j.done_chunks.contains(index))
        return None if item is None else _to_job(item)

    def complete_last_chunk(self, job_id: str, index: int, *, chunks_total: int, imported: int, failed: int,
                            status: ImportStatus, now: datetime) -> ImportJob | None:
        """Count chunk `index`, the job's only missing one, and end the job, in one write."""
        j = self._job
        item = self._update(job_id, [
            j.done_chunks.add({index}), j.chunks_done.add(1), j.rows_imported.add(imported),
            j.rows_failed.add(failed), j.status.set(status), j.finished_at.set(now), j.notified_at.set(now),
            j.updated_at.set(now),
        ], (j.status == RUNNING) & ~j.done_chunks.contains(index) & (j.chunks_done == chunks_total - 1))
        return None if item is None else _to_job(item)

    def finish(self, job_id: str, status: ImportStatus, now: datetime) -> bool:
        """running -> `status` once every chunk is done, recording that the completion was
        announced; True for the one caller that did it."""
        j = self._job
        return self._update(job_id, [j.status.set(status), j.finished_at.set(now), j.notified_at.set(now),
                                     j.updated_at.set(now)],
                            (j.status == RUNNING) & (j.chunks_done == j.chunks_total)) is not None

    def mark_notified(self, job_id: str, now: datetime) -> None:
        j = self._job
        self._update(job_id, [j.notified_at.set(now)], j.pk.exists())

    # -- retention -----------------------------------------------------------------------------

    def expired(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """(job id, owner) of up to `limit` jobs past their retention, oldest first."""
        found = self._job.expiry_index.query(JOB_KIND, self._job.expires_at <= now, limit=limit,
                                             page_size=min(limit, 500))
        return [(item.pk, item.owner) for item in found]

    def delete(self, job_id: str) -> int:
        """Delete the job and its error items (the job last, so an interrupted delete is found
        again by the next run); the number of items deleted."""
        keys = [(e.pk, e.sk) for e in self._error.query(
            job_id, self._error.sk.startswith(_ERROR_SK), attributes_to_get=["pk", "sk"])]
        with self._error.batch_write() as batch:
            for pk, sk in keys:
                batch.delete(self._error(pk, sk))
        self._job(job_id, _JOB_SK).delete()
        return len(keys) + 1


class DynamoImportWriter:
    """The products of a chunk and its row errors, written with BatchWriteItem across both tables.

    Items take their attribute names, types and defaults from the pynamodb models, so an imported
    product is, attribute for attribute, what the API's `save()` writes (one model instance per
    row would cost more CPU than the writes themselves). `client` is a botocore DynamoDB client;
    `sleep` and `jitter` are injectable so tests do not wait.
    """

    def __init__(self, client: Callable[[], DynamoDBClient], product_model: type[ProductItem],
                 import_models: ImportModels, *, sleep: Callable[[float], None] = time.sleep,
                 jitter: Callable[[], float] = random.random) -> None:
        """`client` gives the container's bulk DynamoDB client (made on first use)."""
        self._client = client
        self._product = product_model
        self._error = import_models.error
        self._sleep = sleep
        self._jitter = jitter

    def existing(self, owner: str, first_id: str, last_id: str) -> set[str]:
        """Ids of `owner`'s products in [first_id, last_id], through owner-index.

        The index is eventually consistent: a product written by an earlier delivery of a chunk
        (retried after the queue's visibility timeout, minutes later) is long visible there.
        """
        found: set[str] = set()
        params: dict[str, Any] = {
            "TableName": self._product.Meta.table_name, "IndexName": "owner-index",
            "KeyConditionExpression": "#o = :o AND #i BETWEEN :a AND :b",
            "ExpressionAttributeNames": {"#o": "owner", "#i": "id"},
            "ExpressionAttributeValues": {":o": {"S": owner}, ":a": {"S": first_id}, ":b": {"S": last_id}},
            "ProjectionExpression": "#i",
        }
        while True:
            page = self._call("query", **params)
            found.update(item["id"]["S"] for item in page.get("Items", []))
            if not page.get("LastEvaluatedKey"):
                return found
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def write(self, products: Iterable[Product], errors: Iterable[tuple[str, RowError]], *,
              expires_at: datetime) -> int:
        """Put every product (version 1) and error item; the number of BatchWriteItem calls."""
        product_table = self._product.Meta.table_name
        error_table = self._error.Meta.table_name
        requests: list[tuple[str, dict[str, Any]]] = [
            (product_table, _item(self._product, id=p.id, owner=p.owner, name=p.name,
                                  description=p.description, price_cents=p.price_cents,
                                  currency=p.currency, stock=p.stock, version=1,
                                  created_at=p.created_at, updated_at=p.updated_at))
            for p in products]
        requests += [(error_table, _item(self._error, pk=job_id, sk=error_sort_key(e.row or 0),
                                         row=e.row or 0, message=e.message[:1000], expires_at=expires_at))
                     for job_id, e in errors]
        calls = 0
        for start in range(0, len(requests), _BATCH_WRITE):
            pending: dict[str, list[dict[str, Any]]] = {}
            for table, item in requests[start:start + _BATCH_WRITE]:
                pending.setdefault(table, []).append({"PutRequest": {"Item": item}})
            for attempt in range(_ATTEMPTS):
                response = self._call("batch_write_item", RequestItems=pending)
                calls += 1
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    break
                self._backoff(attempt)
            else:
                raise DependencyUnavailable("DynamoDB left items unprocessed after every retry")
        return calls

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        try:
            answer: dict[str, Any] = getattr(self._client(), operation)(**params)
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable(f"DynamoDB {operation} failed: {exc}") from exc
        return answer

    def _backoff(self, attempt: int) -> None:
        # Full jitter, as the AWS SDKs back off: 50 ms doubling, capped at 2 s.
        self._sleep(min(2.0, 0.05 * 2 ** attempt) * self._jitter())


def _item(model: type[Model], **values: Any) -> dict[str, Any]:
    """`model(**values).serialize()`, without building a model instance: the model's attributes
    give names, types and defaults; None (and attributes with no value) are left out, as
    pynamodb leaves them out."""
    item: dict[str, Any] = {}
    for name, attr_name, attr_type, serialize, number, default, null in _plan(model):
        value = values.get(name)
        if value is None and default is not None:
            value = default() if callable(default) else default
        if value is None:
            if not null:
                raise ValueError(f"{model.__name__}.{name} is required")
            continue
        # pynamodb writes a number as json.dumps(value): for an int, its str()
        item[attr_name] = {attr_type: str(value) if number and type(value) is int else serialize(value)}
    return item


_NUMBER = NumberAttribute.serialize


@functools.lru_cache(maxsize=None)
def _plan(model: type[Model]) -> tuple[tuple[str, str, str, Callable[[Any], Any], bool, Any, bool], ...]:
    """Per attribute of `model`: name, stored name, type, serializer, whether that serializer is
    NumberAttribute's own, default, nullable. Read once, not for every attribute of every row:
    with it a product's item takes ~20 µs to build, against ~70 µs for a model's serialize()."""
    return tuple((name, a.attr_name, a.attr_type, a.serialize, getattr(a.serialize, "__func__", None) is _NUMBER,
                  a.default, a.null) for name, a in model.get_attributes().items())
