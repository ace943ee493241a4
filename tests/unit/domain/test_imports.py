"""The import's pure rules: reading records from bytes, planning chunks, validating rows, product ids."""

from __future__ import annotations

import pytest

from chalicelib.domain.ids import is_id, new_id
from chalicelib.domain.imports import (
    MAX_ROW_BYTES, BadFile, Chunk, PoisonMessage, RowError, parse_row, parse_upload_key, plan_chunks,
    product_id_for, records, upload_key,
)

HEADER = b"name,description,price_cents,currency,stock\n"
JOB = new_id(now_ms=1_795_000_000_000, randomness=b"\x01" * 10)


def blocks_of(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def rows_of(data: bytes, **kwargs) -> list[tuple[int, bytes | None]]:
    return [(r.row, r.data) for r in records([data], **kwargs)]


# Records


@pytest.mark.parametrize("block_size", [1, 2, 3, 5, 64, 10_000])
def test_records_are_the_same_whatever_the_block_boundaries(block_size):
    data = HEADER + b'Mug,"Blue, ""big""\nand round",1200,EUR,5\r\nPlate,,900,EUR,3\nLast,,1,EUR,1'

    found = [(r.row, r.start, r.end, r.data) for r in records(blocks_of(data, block_size))]

    assert [row for row, *_ in found] == [1, 2, 3, 4]
    assert found[1][3] == b'Mug,"Blue, ""big""\nand round",1200,EUR,5\r\n'
    assert found[3][3] == b"Last,,1,EUR,1"  # no newline at the end of the file
    assert all(data[start:end] == chunk for _, start, end, chunk in found)


def test_a_newline_inside_quotes_does_not_end_a_record():
    assert rows_of(b'"a\nb",x\nnext\n') == [(1, b'"a\nb",x\n'), (2, b"next\n")]


def test_records_of_a_slice_keep_the_files_offsets_and_row_numbers():
    found = list(records([b"x,y\nz\n"], offset=100, first_row=7))

    assert [(r.row, r.start, r.end) for r in found] == [(7, 100, 104), (8, 104, 106)]


def test_a_record_longer_than_the_limit_is_reported_but_not_kept():
    data = b"short\n" + b'"' + b"x" * 100 + b"\n" + b"y" * 100 + b'"\nafter\n'

    found = list(records(blocks_of(data, 16), max_bytes=50))

    assert [(r.row, r.data is None) for r in found] == [(1, False), (2, True), (3, False)]
    assert found[1].end - found[1].start == 204
    assert found[2].data == b"after\n"


def test_blank_records_are_marked_blank():
    assert [r.blank for r in records([b"a\n\r\n\nb\n"])] == [False, True, True, False]


# Chunk plans


def test_a_plan_cuts_the_rows_into_chunks_whose_bytes_give_back_their_rows():
    body = HEADER + b"".join(b"P%d,,1,EUR,1\n" % i for i in range(7)) + b"\n\n"

    plan = plan_chunks(blocks_of(body, 5), chunk_rows=3)

    assert plan.rows_total == 7
    assert [(first_row, rows) for _, _, first_row, rows in plan.chunks] == [(2, 3), (5, 3), (8, 1)]
    assert plan.chunks[0][0] == len(HEADER) and plan.chunks[-1][1] == len(body)
    for start, end, first_row, rows in plan.chunks:
        found = [r for r in records([body[start:end]], offset=start, first_row=first_row) if not r.blank]
        assert [r.row for r in found] == list(range(first_row, first_row + rows))


def test_blank_lines_keep_their_row_numbers_but_are_not_rows():
    body = HEADER + b"A,,1,EUR,1\n\nB,,1,EUR,1\n"

    plan = plan_chunks([body], chunk_rows=500)

    assert plan.rows_total == 2
    start, end, first_row, rows = plan.chunks[0]
    assert [r.row for r in records([body[start:end]], offset=start, first_row=first_row)
            if not r.blank] == [2, 4]


def test_a_header_alone_plans_no_chunk():
    assert plan_chunks([HEADER]) == plan_chunks([HEADER.rstrip(b"\n")])
    assert plan_chunks([HEADER]).rows_total == 0 and plan_chunks([HEADER]).chunks == []


def test_the_header_may_carry_a_byte_order_mark_crlf_and_spaces():
    assert plan_chunks([b"\xef\xbb\xbfname, description ,price_cents,currency,stock\r\nA,,1,EUR,1\r\n"]).rows_total == 1


@pytest.mark.parametrize("body, message", [
    (b"", "the file is empty"),
    (b"name,price_cents,currency,stock\nA,1,EUR,1\n", "the header must be name,description,price_cents,currency,stock"),
    (b"\xff\xfename\n", "the header is not UTF-8 CSV"),
])
def test_a_file_without_the_header_is_refused(body, message):
    with pytest.raises(BadFile) as refused:
        plan_chunks([body])

    assert message in refused.value.message
    assert refused.value.row == (None if not body else 1)


# Rows


def record(line: bytes, row: int = 2):
    return next(records([line], first_row=row))


def test_a_valid_row_gives_the_fields_of_a_created_product():
    assert parse_row(record(b'Mug,"Blue, 350 ml",1200,EUR,5\r\n')) == {
        "name": "Mug", "description": "Blue, 350 ml", "price_cents": 1200, "currency": "EUR", "stock": 5}


def test_an_empty_description_is_an_empty_string():
    assert parse_row(record(b"Mug,,1200,EUR,5\n"))["description"] == ""


@pytest.mark.parametrize("line, message", [
    (b"Mug,,12.50,EUR,5", "price_cents: must be an integer"),
    (b"Mug,,,EUR,5", "price_cents: must be an integer"),
    (b"Mug,,1200,eur,5", "currency: must be three upper-case letters (ISO 4217, e.g. EUR)"),
    (b"Mug,,1200,EUR,-1", "stock: must be at least 0"),
    (b"Mug,,1000000001,EUR,1", "price_cents: must be at most 1,000,000,000"),
    (b",,1200,EUR,1", "name: must not be empty"),
    (b"   ,,1200,EUR,1", "name: must not be blank"),
    (b"Mug,,1200,EUR", "has 4 fields; expected 5 (name,description,price_cents,currency,stock)"),
    (b"Mug,,1200,EUR,1,extra", "has 6 fields; expected 5"),
    (b'"Mug,,1200,EUR,1', "is not valid CSV"),
    (b"Mu\xe9,,1200,EUR,1", "is not valid UTF-8"),
])
def test_an_invalid_row_names_its_row_and_the_apis_message(line, message):
    error = parse_row(record(line, row=9))

    assert isinstance(error, RowError) and error.row == 9
    assert message in error.message


def test_the_name_and_description_limits_are_the_apis():
    too_long = parse_row(record(b"N" * 201 + b",,1,EUR,1"))
    assert too_long == RowError(2, "name: must be at most 200 characters")
    assert parse_row(record(b"Mug," + b"d" * 2001 + b",1,EUR,1")).message == \
        "description: must be at most 2,000 characters"


def test_a_row_longer_than_the_limit_is_an_error_without_its_text():
    long_row = next(records([b"x" * (MAX_ROW_BYTES + 1) + b"\n"], first_row=3))

    assert parse_row(long_row) == RowError(3, "is longer than 64 KiB (an unclosed quote?)")


# Product ids


def test_a_rows_product_id_is_a_ulid_that_never_changes():
    assert product_id_for(JOB, 2) == product_id_for(JOB, 2)
    assert is_id(product_id_for(JOB, 2))


def test_product_ids_share_the_jobs_time_and_sort_in_row_order():
    ids = [product_id_for(JOB, row) for row in (2, 3, 10, 1_000_000)]

    assert ids == sorted(ids)
    assert all(i[:10] == JOB[:10] for i in ids)


def test_two_jobs_of_the_same_millisecond_never_share_a_product_id():
    twin = new_id(now_ms=1_795_000_000_000, randomness=b"\x02" * 10)

    assert product_id_for(JOB, 2) != product_id_for(twin, 2)


# Keys and messages


def test_an_upload_key_names_its_owner_and_job():
    assert parse_upload_key(upload_key("3a59-sub", JOB)) == ("3a59-sub", JOB)
    assert parse_upload_key(f"imports/a/{JOB}.txt") is None
    assert parse_upload_key(f"uploads/a/{JOB}.csv") is None
    assert parse_upload_key("imports/a/../b.csv") is None


def test_a_chunk_message_round_trips():
    chunk = Chunk(job_id=JOB, owner="o", etag='"e"', index=3, start=10, end=99, first_row=1502, rows=500)

    assert Chunk.from_message(chunk.to_message()) == chunk


@pytest.mark.parametrize("body", [
    "text", {"v": 2}, {"v": 1, "job_id": JOB}, {**Chunk(JOB, "o", "e", 0, 5, 9, 2, 1).to_message(), "start": -1},
    {**Chunk(JOB, "o", "e", 0, 5, 9, 2, 1).to_message(), "end": 5},
    {**Chunk(JOB, "o", "e", 0, 5, 9, 2, 1).to_message(), "rows": True},
])
def test_anything_else_is_a_poison_message(body):
    with pytest.raises(PoisonMessage):
        Chunk.from_message(body)
