"""The local DynamoDB keeps DynamoDB's guarantees under concurrent requests: a transaction is
all-or-nothing and isolated, so conditional stock decrements never oversell and no write is lost."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

from devstack import moto_speedups
from tests.support.threads import frequent_thread_switches  # noqa: F401 - a fixture

pytestmark = pytest.mark.timeout(120)

STOCK, THREADS, ORDERS_EACH = 20, 8, 20


@pytest.fixture
def ddb(aws):
    moto_speedups.install()  # as the local stack runs it
    client = aws("dynamodb")
    for name in ("isolation-products", "isolation-orders"):
        client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    return client


def _confirm(order_id: str) -> list[dict]:
    """The orders consumer's write: take one unit if there is one, and confirm the queued order."""
    return [
        {"Update": {"TableName": "isolation-products", "Key": {"id": {"S": "mug"}},
                    "UpdateExpression": "SET stock = stock - :one", "ConditionExpression": "stock >= :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}}}},
        {"Update": {"TableName": "isolation-orders", "Key": {"id": {"S": order_id}},
                    "UpdateExpression": "SET #s = :confirmed", "ConditionExpression": "#s = :queued",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {":confirmed": {"S": "confirmed"}, ":queued": {"S": "queued"}}}},
    ]


def test_concurrent_transactions_for_the_last_units_never_oversell_nor_lose_a_write(
        ddb, aws, frequent_thread_switches):
    ddb.put_item(TableName="isolation-products", Item={"id": {"S": "mug"}, "stock": {"N": str(STOCK)}})
    confirmed: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def buyer() -> None:
        client = aws("dynamodb")
        start.wait()
        try:
            for _ in range(ORDERS_EACH):
                order_id = uuid.uuid4().hex
                client.put_item(TableName="isolation-orders", Item={"id": {"S": order_id}, "status": {"S": "queued"}})
                try:
                    client.transact_write_items(TransactItems=_confirm(order_id))
                    confirmed.append(order_id)
                except client.exceptions.TransactionCanceledException:
                    client.update_item(TableName="isolation-orders", Key={"id": {"S": order_id}},
                                       UpdateExpression="SET #s = :rejected", ExpressionAttributeNames={"#s": "status"},
                                       ExpressionAttributeValues={":rejected": {"S": "rejected"}})
        except BaseException as error:  # a 500 from the stand-in fails the test below
            errors.append(error)

    threads = [threading.Thread(target=buyer) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(confirmed) == STOCK
    stock = ddb.get_item(TableName="isolation-products", Key={"id": {"S": "mug"}})["Item"]["stock"]["N"]
    assert stock == "0"
    orders = ddb.scan(TableName="isolation-orders")["Items"]
    assert Counter(o["status"]["S"] for o in orders) == {"confirmed": STOCK, "rejected": THREADS * ORDERS_EACH - STOCK}
