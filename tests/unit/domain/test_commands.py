"""Product commands: every rule the API promises about a body, and the field each 400 names."""

from __future__ import annotations

import re
from typing import Any

import pytest

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.commands import CreateProduct, InvalidField, UpdateProduct, Violation, parse_command

VALID: dict[str, Any] = {"name": "Mug", "description": "Blue", "price_cents": 1200,
                         "currency": "EUR", "stock": 5}


def rejected(model: type, body: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        parse_command(model, body)
    return caught.value


def test_a_valid_body_becomes_a_command_with_every_field():
    command = parse_command(CreateProduct, VALID)

    assert command.model_dump() == VALID


def test_description_is_optional_and_defaults_to_empty():
    body = {k: v for k, v in VALID.items() if k != "description"}

    assert parse_command(CreateProduct, body).description == ""


def test_the_largest_values_allowed_are_accepted():
    body = {**VALID, "name": "n" * 200, "description": "d" * 2000, "price_cents": 1_000_000_000,
            "stock": 1_000_000}

    assert parse_command(CreateProduct, body).price_cents == 1_000_000_000


def test_zero_price_and_zero_stock_are_allowed():
    command = parse_command(CreateProduct, {**VALID, "price_cents": 0, "stock": 0})

    assert (command.price_cents, command.stock) == (0, 0)


@pytest.mark.parametrize("missing", ["name", "price_cents", "currency", "stock"])
def test_each_required_field_is_named_when_missing(missing):
    body = {k: v for k, v in VALID.items() if k != missing}

    error = rejected(CreateProduct, body)

    assert (error.field, error.message) == (missing, "is required")


def test_an_unknown_field_is_named():
    error = rejected(CreateProduct, {**VALID, "colour": "red"})

    assert (error.field, error.message) == ("colour", "is not a known field")


@pytest.mark.parametrize("field,value,message", [
    ("name", 12, "must be a string"),
    ("description", ["a"], "must be a string"),
    ("currency", None, "must be a string"),
    ("price_cents", "1200", "must be an integer"),
    ("price_cents", 12.0, "must be an integer"),
    ("price_cents", 12.5, "must be an integer"),
    ("price_cents", True, "must be an integer"),
    ("stock", False, "must be an integer"),
    ("stock", 1.0, "must be an integer"),
    ("stock", None, "must be an integer"),
])
def test_a_value_of_the_wrong_type_is_named(field, value, message):
    error = rejected(CreateProduct, {**VALID, field: value})

    assert (error.field, error.message) == (field, message)


@pytest.mark.parametrize("field,value,message", [
    ("name", "", "must not be empty"),
    ("name", "n" * 201, "must be at most 200 characters"),
    ("description", "d" * 2001, "must be at most 2,000 characters"),
    ("price_cents", -1, "must be at least 0"),
    ("price_cents", 1_000_000_001, "must be at most 1,000,000,000"),
    ("stock", -1, "must be at least 0"),
    ("stock", 1_000_001, "must be at most 1,000,000"),
])
def test_a_value_out_of_bounds_is_named_with_the_bound(field, value, message):
    error = rejected(CreateProduct, {**VALID, field: value})

    assert (error.field, error.message) == (field, message)


@pytest.mark.parametrize("blank", [" ", "\t\n", "\u00a0\u2003"])
def test_a_name_of_only_whitespace_is_blank(blank):
    error = rejected(CreateProduct, {**VALID, "name": blank})

    assert (error.field, error.message) == ("name", "must not be blank")


@pytest.mark.parametrize("currency", ["eur", "EURO", "EU", "E1R", "EUR\n", " EUR", "€UR"])
def test_currency_must_be_three_upper_case_letters(currency):
    error = rejected(CreateProduct, {**VALID, "currency": currency})

    assert error.field == "currency"
    assert "three upper-case letters" in error.message


@pytest.mark.parametrize("body", [[VALID], "Mug", 12, None, True])
def test_a_body_that_is_not_an_object_names_the_body(body):
    error = rejected(CreateProduct, body)

    assert (error.field, error.message) == ("body", "must be a JSON object")


def test_the_first_bad_field_in_declaration_order_is_reported():
    error = rejected(CreateProduct, {"stock": -1, "currency": "eur", "price_cents": "x"})

    assert error.field == "name"


def test_a_patch_takes_any_subset_and_reports_only_what_it_sets():
    command = parse_command(UpdateProduct, {"stock": 0, "description": ""})

    assert command.changes() == {"stock": 0, "description": ""}


def test_an_empty_patch_names_the_body():
    error = rejected(UpdateProduct, {})

    assert (error.field, error.message) == ("body", "names no field to change")


@pytest.mark.parametrize("field", ["name", "description", "price_cents", "currency", "stock"])
def test_a_patch_cannot_null_a_field(field):
    error = rejected(UpdateProduct, {field: None})

    assert error.field == field


@pytest.mark.parametrize("field,value", [
    ("name", "   "), ("price_cents", True), ("stock", 2.0), ("currency", "usd"), ("colour", "red"),
])
def test_a_patch_follows_the_same_rules_as_a_create(field, value):
    error = rejected(UpdateProduct, {field: value})

    assert error.field == field


@pytest.mark.parametrize("blank", ["\x1c\x1f", "\ufeff", "\u0085", "\u3000\u2028"])
def test_a_name_some_regex_engine_calls_white_space_is_blank_for_all(blank):
    # Python's re, JSON Schema's ECMA-262 and pydantic's Rust regex disagree about these; the
    # OpenAPI document's pattern is this one, so a generator of either kind agrees with the app.
    pattern = CreateProduct.model_json_schema()["properties"]["name"]["pattern"]

    with pytest.raises(InvalidInput, match="name: must not be blank"):
        parse_command(CreateProduct, {**VALID, "name": blank})
    assert re.search(pattern, blank) is None
    assert re.search(pattern, f"{blank}Mug") is not None


@pytest.mark.parametrize("model,body,field,kind", [
    (CreateProduct, {k: v for k, v in VALID.items() if k != "stock"}, "stock", Violation.MISSING),
    (CreateProduct, {**VALID, "colour": "red"}, "colour", Violation.UNKNOWN_FIELD),
    (CreateProduct, {**VALID, "price_cents": 12.0}, "price_cents", Violation.WRONG_TYPE),
    (CreateProduct, {**VALID, "name": 12}, "name", Violation.WRONG_TYPE),
    (CreateProduct, ["not", "an", "object"], "body", Violation.WRONG_TYPE),
    (CreateProduct, {**VALID, "stock": -1}, "stock", Violation.TOO_SMALL),
    (CreateProduct, {**VALID, "name": ""}, "name", Violation.TOO_SMALL),
    (CreateProduct, {**VALID, "price_cents": 1_000_000_001}, "price_cents", Violation.TOO_LARGE),
    (CreateProduct, {**VALID, "description": "d" * 2001}, "description", Violation.TOO_LARGE),
    (CreateProduct, {**VALID, "name": " "}, "name", Violation.BAD_FORMAT),
    (CreateProduct, {**VALID, "currency": "eur"}, "currency", Violation.BAD_FORMAT),
    (UpdateProduct, {"stock": None}, "stock", Violation.NULL),
    (UpdateProduct, {}, "body", Violation.NO_CHANGE),
])
def test_a_rejection_says_which_kind_of_rule_was_broken(model, body, field, kind):
    # Callers that reword a message decide on `kind`, never on the message's text.
    error = rejected(model, body)

    assert isinstance(error, InvalidField)
    assert (error.field, error.kind) == (field, kind)


def test_a_rejection_is_still_the_invalid_input_every_route_answers_with_400():
    error = rejected(CreateProduct, {})

    assert isinstance(error, InvalidInput) and str(error) == "name: is required"
