"""A new product kept with its idempotency key reads back as the same product."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

from chalicelib.domain.products import created_document, from_created_document, new_product


def test_a_created_product_survives_its_document_to_the_millisecond():
    created = datetime(2026, 12, 2, 20, 41, 5, 123456, tzinfo=timezone.utc)
    product = new_product({"name": "Mug", "description": "Blue", "price_cents": 1200, "currency": "EUR",
                           "stock": 5}, product_id="01JDZ3NDEKTSV4RRFFQ69G5FAV", owner="alice", now=created)

    document = created_document(product)
    again = from_created_document(document)

    assert document["created_at"] == "2026-12-02T20:41:05.123Z"  # what the API answered the first time
    to_the_ms = created.replace(microsecond=123000)
    assert again == dataclasses.replace(product, created_at=to_the_ms, updated_at=to_the_ms)


def test_a_document_written_as_the_api_answer_reads_back_too():
    # Records written before the document existed hold the API's product JSON (images: []).
    answered = {"id": "01JDZ3NDEKTSV4RRFFQ69G5FAV", "owner": "alice", "name": "Mug", "description": "",
                "price_cents": 1200, "currency": "EUR", "stock": 5, "version": 1,
                "created_at": "2026-12-02T20:41:05.123Z", "updated_at": "2026-12-02T20:41:05.123Z", "images": []}

    product = from_created_document(answered)

    assert (product.id, product.version, product.images) == ("01JDZ3NDEKTSV4RRFFQ69G5FAV", 1, ())
    assert product.created_at == datetime(2026, 12, 2, 20, 41, 5, 123000, tzinfo=timezone.utc)
