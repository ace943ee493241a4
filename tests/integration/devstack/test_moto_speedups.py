"""The local stack's faster TransactWriteItems still rolls back exactly like DynamoDB."""

from __future__ import annotations

import copy

import pytest
from botocore.exceptions import ClientError
from moto.dynamodb.models.table import Table

from devstack.moto_speedups import install

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def ddb(aws):
    install()
    client = aws("dynamodb")
    for name in ("speed-a", "speed-b"):
        client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    return client


def _stock(ddb, table: str, key: str):
    item = ddb.get_item(TableName=table, Key={"id": {"S": key}}).get("Item")
    return None if item is None else int(item["stock"]["N"])


def _decrement(table: str, key: str, by: int) -> dict:
    return {"Update": {"TableName": table, "Key": {"id": {"S": key}},
                       "UpdateExpression": "SET stock = stock - :n", "ConditionExpression": "stock >= :n",
                       "ExpressionAttributeValues": {":n": {"N": str(by)}}}}


def test_a_cancelled_transaction_undoes_the_writes_before_the_failing_condition(ddb):
    ddb.put_item(TableName="speed-a", Item={"id": {"S": "x"}, "stock": {"N": "5"}})
    ddb.put_item(TableName="speed-b", Item={"id": {"S": "y"}, "stock": {"N": "1"}})
    with pytest.raises(ClientError) as failure:
        ddb.transact_write_items(TransactItems=[_decrement("speed-a", "x", 2), _decrement("speed-b", "y", 3)])
    assert failure.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert (_stock(ddb, "speed-a", "x"), _stock(ddb, "speed-b", "y")) == (5, 1)


def test_a_cancelled_transaction_removes_the_item_it_created(ddb):
    ddb.put_item(TableName="speed-b", Item={"id": {"S": "z"}, "stock": {"N": "0"}})
    with pytest.raises(ClientError):
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": "speed-a", "Item": {"id": {"S": "new"}, "stock": {"N": "9"}}}},
            _decrement("speed-b", "z", 1)])
    assert _stock(ddb, "speed-a", "new") is None


def test_a_successful_transaction_applies_every_write(ddb):
    ddb.put_item(TableName="speed-a", Item={"id": {"S": "p"}, "stock": {"N": "5"}})
    ddb.transact_write_items(TransactItems=[
        _decrement("speed-a", "p", 5),
        {"Put": {"TableName": "speed-b", "Item": {"id": {"S": "q"}, "stock": {"N": "1"}}}}])
    assert (_stock(ddb, "speed-a", "p"), _stock(ddb, "speed-b", "q")) == (0, 1)


def test_tables_are_still_deep_copied_outside_transactions(ddb):
    from moto.backends import get_backend

    table = get_backend("dynamodb")["123456789012"]["us-east-1"].tables["speed-a"]
    clone = copy.deepcopy(table)
    assert isinstance(clone, Table) and clone is not table and clone.items is not table.items


def test_an_item_over_dynamodbs_size_limit_is_still_refused(ddb):
    too_big = {"id": {"S": "big"}, **{f"a{i}": {"S": "x" * 50_000} for i in range(9)}}
    with pytest.raises(ClientError) as failure:
        ddb.put_item(TableName="speed-a", Item=too_big)
    assert "maximum allowed size" in failure.value.response["Error"]["Message"]
    assert ddb.get_item(TableName="speed-a", Key={"id": {"S": "big"}}).get("Item") is None


def test_an_item_under_the_limit_is_stored_whole(ddb):
    item = {"id": {"S": "wide"}, **{f"a{i}": {"S": "x" * 40_000} for i in range(9)}}
    ddb.batch_write_item(RequestItems={"speed-a": [{"PutRequest": {"Item": item}}]})
    assert ddb.get_item(TableName="speed-a", Key={"id": {"S": "wide"}})["Item"] == item


def test_building_an_item_sizes_each_attribute_once(ddb, monkeypatch):
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    from devstack import moto_speedups

    sized = []
    original = moto_speedups._size
    monkeypatch.setattr(moto_speedups, "_size", lambda value: sized.append(value) or original(value))
    Item(DynamoType({"S": "k"}), None, {f"a{i}": {"S": "v"} for i in range(40)})
    assert len(sized) == 40  # moto's own check sized 1 + 2 + ... + 40 = 820 times


@pytest.mark.parametrize("value", [{"S": "ünï"}, {"S": ""}, {"N": "-12.50"}, {"B": b"\x00\x01"}, {"SS": ["a", "bc"]},
                                   {"M": {"k": {"S": "v"}}}, {"L": [{"N": "1"}]}, {"NULL": True}, {"BOOL": False}])
def test_a_value_is_sized_as_moto_sizes_it(value):
    from moto.dynamodb.models.dynamo_type import DynamoType

    from devstack import moto_speedups

    assert moto_speedups._size(DynamoType(value)) == DynamoType(value).size()


# -- Query: the same answers as moto's own Query, page by page -----------------------------------

_QUERIES = [
    {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "p1"}}},
    {"KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
     "ExpressionAttributeValues": {":p": {"S": "p1"}, ":s": {"S": "b"}}, "ScanIndexForward": False},
    {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "nobody"}}},
    {"IndexName": "by-owner", "KeyConditionExpression": "#o = :o",
     "ExpressionAttributeNames": {"#o": "owner"}, "ExpressionAttributeValues": {":o": {"S": "alice"}}},
    {"IndexName": "by-owner", "KeyConditionExpression": "#o = :o AND rank BETWEEN :a AND :b",
     "ExpressionAttributeNames": {"#o": "owner"},
     "ExpressionAttributeValues": {":o": {"S": "alice"}, ":a": {"N": "2"}, ":b": {"N": "10.0"}}},
    {"IndexName": "by-owner", "KeyConditionExpression": "#o = :o AND rank < :a",
     "ExpressionAttributeNames": {"#o": "owner"}, "ExpressionAttributeValues": {":o": {"S": "bob"}, ":a": {"N": "7"}},
     "ScanIndexForward": False, "FilterExpression": "attribute_exists(note)", "ProjectionExpression": "pk, sk"},
    {"IndexName": "by-owner", "KeyConditionExpression": "#o = :o AND rank >= :a",
     "ExpressionAttributeNames": {"#o": "owner"}, "ExpressionAttributeValues": {":o": {"S": "nobody"}, ":a": {"N": "1"}}},
]


@pytest.fixture(scope="module")
def query_table(ddb):
    ddb.create_table(
        TableName="speed-q", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"},
                              {"AttributeName": "owner", "AttributeType": "S"},
                              {"AttributeName": "rank", "AttributeType": "N"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[{"IndexName": "by-owner", "Projection": {"ProjectionType": "ALL"},
                                 "KeySchema": [{"AttributeName": "owner", "KeyType": "HASH"},
                                               {"AttributeName": "rank", "KeyType": "RANGE"}]}])
    for i in range(60):
        item = {"pk": {"S": f"p{i % 4}"}, "sk": {"S": f"{'abc'[i % 3]}{i:03d}"}}
        if i % 5:  # the others are not in the (sparse) index
            item["owner"] = {"S": ("alice", "bob")[i % 2]}
            item["rank"] = {"N": ("1", "1.0", "2", "7", "10", "10.00", "-3", "0.5")[i % 8]}
        if i % 3 == 0:
            item["note"] = {"S": "n"}
        ddb.put_item(TableName="speed-q", Item=item)
    return "speed-q"


def _pages(ddb, table: str, query: dict, limit: int | None) -> list[dict]:
    pages, params = [], {"TableName": table, **query, **({"Limit": limit} if limit else {})}
    while True:
        page = ddb.query(**params)
        pages.append({k: page.get(k) for k in ("Items", "Count", "ScannedCount", "LastEvaluatedKey")})
        if "LastEvaluatedKey" not in page or len(pages) > 100:
            return pages
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@pytest.mark.parametrize("limit", [None, 1, 4])
@pytest.mark.parametrize("query", _QUERIES, ids=lambda q: q["KeyConditionExpression"])
def test_a_query_answers_exactly_as_moto_alone_would(ddb, query_table, query, limit, monkeypatch):
    from devstack import moto_speedups

    quick = _pages(ddb, query_table, query, limit)
    monkeypatch.setattr(Table, "query", moto_speedups._original_query)
    monkeypatch.setattr(Table, "all_items", moto_speedups._sorted_all_items)
    assert quick == _pages(ddb, query_table, query, limit)
    assert any(page["Items"] for page in quick) or "nobody" in str(query)


def test_a_query_on_an_index_does_not_sort_or_size_the_whole_table(ddb, query_table, monkeypatch):
    from moto.dynamodb.models.dynamo_type import Item

    sized = []
    original = Item.size
    monkeypatch.setattr(Item, "size", lambda self: sized.append(self) or original(self))
    found = ddb.query(TableName=query_table, IndexName="by-owner", KeyConditionExpression="#o = :o AND rank = :r",
                      ExpressionAttributeNames={"#o": "owner"},
                      ExpressionAttributeValues={":o": {"S": "bob"}, ":r": {"N": "7"}})["Items"]
    assert found and len(sized) <= 2 * len(found)  # moto alone sized every item of bob's 24


# -- Parsing: an attribute value of a plain type is taken as it is, exactly as moto parses it -----

_VALUES = [
    {"S": "text"}, {"S": ""}, {"S": "ünïcødé ✓"}, {"N": "12"}, {"N": "-0.5e3"}, {"NULL": True},
    {"BOOL": False}, {"SS": ["a", "b"]}, {"NS": ["1", "2.5"]}, {"SS": []},
    {"B": "aGVsbG8="}, {"BS": ["aGVsbG8=", "d29ybGQ="]},
    {"M": {"s": {"S": "x"}, "b": {"B": "aGVsbG8="}, "n": {"NULL": True}}},
    {"L": [{"N": "1"}, {"S": "two"}, {"L": [{"BOOL": True}]}]},
    {"S": "x", "N": "1"},       # two members: moto's parse keeps both
    {"S": None}, {"N": 5}, {}, {"SS": ["a", 1]}, {"BOOL": "yes"}, {"unknown": "x"},
]


def _parse_put(item: dict) -> dict:
    import json

    from moto.core.parse import PROTOCOL_PARSERS
    from moto.core.utils import get_service_model

    operation = get_service_model("dynamodb").operation_model("BatchWriteItem")
    body = json.dumps({"RequestItems": {"t": [{"PutRequest": {"Item": item}}]}})
    parsed = PROTOCOL_PARSERS["json"](operation).parse(
        {"method": "POST", "values": {}, "headers": {}, "body": body, "url_path": "/", "url_params": {}})
    return parsed["RequestItems"]["t"][0]["PutRequest"]["Item"]


def test_attribute_values_parse_exactly_as_moto_parses_them(ddb, monkeypatch):
    from moto.core.parse import BaseJSONParser

    from devstack import moto_speedups

    item = {f"a{i}": value for i, value in enumerate(_VALUES)}
    quick = _parse_put(item)
    monkeypatch.setattr(BaseJSONParser, "_parse_structure", moto_speedups._original_parse_structure)
    assert quick == _parse_put(item)
    assert quick["a10"]["B"] == b"hello"  # binary still decoded by moto


def test_a_batch_write_of_every_kind_of_value_reads_back_the_same(ddb):
    item = {"id": {"S": "kinds"}, "s": {"S": "ünï"}, "n": {"N": "1.5"}, "null": {"NULL": True},
            "bool": {"BOOL": False}, "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2"]},
            "b": {"B": b"\x00\x01"}, "bs": {"BS": [b"\x02", b"\x03"]},
            "m": {"M": {"inner": {"S": "x"}}}, "l": {"L": [{"N": "1"}, {"B": b"\x04"}]}}
    ddb.batch_write_item(RequestItems={"speed-a": [{"PutRequest": {"Item": item}}]})
    stored = ddb.get_item(TableName="speed-a", Key={"id": {"S": "kinds"}})["Item"]
    assert {k: v for k, v in stored.items() if k not in ("ss", "ns", "bs")} == \
        {k: v for k, v in item.items() if k not in ("ss", "ns", "bs")}
    assert sorted(stored["ss"]["SS"]) == ["a", "b"] and sorted(stored["bs"]["BS"]) == [b"\x02", b"\x03"]


def test_a_send_does_not_count_the_queues_messages_and_fifo_sends_behave_as_in_moto(aws, monkeypatch):
    import moto.sqs.models as sqs_models

    install()
    sqs = aws("sqs")
    standard = sqs.create_queue(QueueName="speed-standard")["QueueUrl"]
    fifo = sqs.create_queue(QueueName="speed.fifo", Attributes={"FifoQueue": "true",
                                                                "ContentBasedDeduplication": "true"})["QueueUrl"]
    strict = sqs.create_queue(QueueName="speed-strict.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    walked = []
    counting = sqs_models.Queue.approximate_number_of_messages
    monkeypatch.setattr(sqs_models.Queue, "approximate_number_of_messages",
                        property(lambda self: walked.append(self.name) or counting.fget(self)))

    sqs.send_message(QueueUrl=standard, MessageBody="one")
    for _ in range(2):  # the same body twice: content-based deduplication keeps one
        sqs.send_message(QueueUrl=fifo, MessageBody="same", MessageGroupId="g")
    with pytest.raises(ClientError, match="ContentBasedDeduplication enabled or MessageDeduplicationId"):
        sqs.send_message(QueueUrl=strict, MessageBody="x", MessageGroupId="g")

    assert walked == []
    received = sqs.receive_message(QueueUrl=fifo, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in received] == ["same"]
    attributes = sqs.get_queue_attributes(QueueUrl=standard, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "1" and walked  # read outside a send: counted
