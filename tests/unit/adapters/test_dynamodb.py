"""The DynamoDB plumbing every table adapter shares: binding models, and translating errors."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from pynamodb.exceptions import CancellationReason, GetError, PutError, TransactWriteError, VerboseClientError

from chalicelib.adapters.dynamodb import (
    CONDITION_FAILED, cancellation_codes, condition_failed, is_conflict, is_transient, translate_transient,
)
from chalicelib.adapters.products_table import ProductItem, bind_products_table
from chalicelib.domain.errors import DependencyUnavailable


def _client_error(code: str, operation: str = "PutItem") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "from the test"}}, operation)


def _cancelled(*codes: str | None) -> TransactWriteError:
    """What pynamodb raises for a cancelled TransactWriteItems (one reason per item, in order)."""
    cause = VerboseClientError(
        {"Error": {"Code": "TransactionCanceledException", "Message": "from the test"}}, "TransactWriteItems",
        cancellation_reasons=[None if c is None else CancellationReason(code=c) for c in codes])
    return TransactWriteError("transaction cancelled", cause=cause)


def test_each_binding_names_its_own_table_and_owns_its_indexes():
    first = bind_products_table(table="products-a", region="us-east-1")
    second = bind_products_table(table="products-b", region="eu-west-1")

    assert (first.Meta.table_name, second.Meta.table_name) == ("products-a", "products-b")
    assert (first.Meta.region, second.Meta.region) == ("us-east-1", "eu-west-1")
    # A shared index object would query the table of whichever model was bound last.
    assert first.owner_index is not second.owner_index
    assert first.owner_index._model is first and second.catalog_index._model is second
    assert issubclass(first, ProductItem) and list(first.get_attributes()) == list(ProductItem.get_attributes())


def test_a_false_condition_is_told_apart_from_other_failures():
    assert condition_failed(PutError("put", cause=_client_error("ConditionalCheckFailedException")))
    assert condition_failed(_client_error("ConditionalCheckFailedException"))
    assert not condition_failed(PutError("put", cause=_client_error("ValidationException")))
    assert not condition_failed(ValueError("not DynamoDB at all"))


def test_a_cancelled_transaction_says_which_item_failed_its_condition():
    error = _cancelled(None, CONDITION_FAILED)

    assert cancellation_codes(error) == [None, CONDITION_FAILED]
    assert not is_conflict(error) and not is_transient(error)


@pytest.mark.parametrize("error", [
    GetError("get", cause=_client_error("ProvisionedThroughputExceededException", "GetItem")),
    _client_error("ThrottlingException"),
    _cancelled(None, "ThrottlingError"),
])
def test_throttling_becomes_dependency_unavailable(error):
    with pytest.raises(DependencyUnavailable, match="retry shortly"):
        with translate_transient():
            raise error


def test_other_failures_pass_through_untranslated():
    error = PutError("put", cause=_client_error("ValidationException"))
    with pytest.raises(PutError):
        with translate_transient():
            raise error


def test_a_concurrent_transaction_is_a_conflict():
    assert is_conflict(_cancelled("TransactionConflict", None))
    assert is_conflict(TransactWriteError("tx", cause=_client_error("TransactionConflictException",
                                                                     "TransactWriteItems")))
