"""Commands that create and change products, validated by pydantic.

Kept apart from `products` so the read path (GET) never imports pydantic: ~0.1 s of cold start.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.ids import ID_REGEX
from chalicelib.domain.orders import MAX_QUANTITY, PAYMENT_METHOD_REGEX

__all__ = ["Command", "CreateProduct", "UpdateProduct", "PlaceOrder", "parse_command", "InvalidField", "Violation",
           "MAX_BODY_BYTES", "MAX_PRICE_CENTS", "MAX_STOCK", "MIN_QUANTITY", "PriceCents", "Stock", "Currency",
           "absent_not_null"]

# The largest valid product is ~26.5 KB as ASCII-escaped JSON (json.dumps' default), where a
# character outside the BMP is a 12-byte surrogate pair: 2,200 such characters of name and
# description. Small enough that nobody streams megabytes into a Lambda through this route.
MAX_BODY_BYTES = 32 * 1024

# "Not blank", spelled out: \S differs between pydantic's Rust regex, Python's re (which clients'
# and schemathesis' generators use) and JSON Schema's ECMA-262 (\x1c-\x1f, \ufeff). A name must
# hold a character that none of them calls white space.
_BLANK = r"\t\n\v\f\r \x1c-\x1f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=rf"[^{_BLANK}]")]
Description = Annotated[str, StringConstraints(max_length=2000)]
MAX_PRICE_CENTS = 1_000_000_000
MAX_STOCK = 1_000_000
MIN_QUANTITY = 1  # MAX_QUANTITY is the domain's (chalicelib.domain.orders), the consumer checks it too
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
PriceCents = Annotated[int, Field(ge=0, le=MAX_PRICE_CENTS, strict=True)]
Stock = Annotated[int, Field(ge=0, le=MAX_STOCK, strict=True)]


class Violation(StrEnum):
    """The kind of rule a field broke, so code can decide on it (never on a message's words)."""

    MISSING = "missing"  # a required field is absent
    UNKNOWN_FIELD = "unknown_field"  # a field the command does not have
    WRONG_TYPE = "wrong_type"  # not a string / integer / JSON object (strict: 1.0 is not an integer)
    TOO_SMALL = "too_small"  # under a minimum, or shorter than a minimum length (an empty name)
    TOO_LARGE = "too_large"  # over a maximum, or longer than a maximum length
    BAD_FORMAT = "bad_format"  # does not match the field's pattern (a blank name, a currency, an id)
    NOT_ALLOWED = "not_allowed"  # not one of the field's allowed values
    NULL = "null"  # an explicit null where leaving the field out is the way to keep it
    NO_CHANGE = "no_change"  # a patch that names no field
    INVALID = "invalid"  # any other rule pydantic reports


class InvalidField(InvalidInput):
    """InvalidInput from a command's validation; `kind` says which rule `field` broke."""

    def __init__(self, field: str, message: str, kind: Violation) -> None:
        super().__init__(field, message)
        self.kind = kind


# pydantic's error types (https://docs.pydantic.dev/latest/errors/validation_errors/) by kind.
_KINDS: dict[str, Violation] = {
    "missing": Violation.MISSING,
    "extra_forbidden": Violation.UNKNOWN_FIELD,
    "int_type": Violation.WRONG_TYPE, "string_type": Violation.WRONG_TYPE, "model_type": Violation.WRONG_TYPE,
    "greater_than_equal": Violation.TOO_SMALL, "greater_than": Violation.TOO_SMALL,
    "string_too_short": Violation.TOO_SMALL, "too_short": Violation.TOO_SMALL,
    "less_than_equal": Violation.TOO_LARGE, "less_than": Violation.TOO_LARGE,
    "string_too_long": Violation.TOO_LARGE, "too_long": Violation.TOO_LARGE,
    "string_pattern_mismatch": Violation.BAD_FORMAT,
    "literal_error": Violation.NOT_ALLOWED, "enum": Violation.NOT_ALLOWED,
    "null": Violation.NULL,  # UpdateProduct._not_null's own error
}


def absent_not_null(schema: dict[str, Any]) -> None:
    """JSON Schema hook: an optional field may be left out, but null is not one of its values.

    pydantic writes `X | None = None` as "X or null"; for these models None only means absent.
    """
    required = set(schema.get("required", ()))
    for name, prop in schema.get("properties", {}).items():
        variants = prop.get("anyOf")
        if name in required or not variants:
            continue
        kept = [v for v in variants if v != {"type": "null"}]
        if len(kept) == 1:
            del prop["anyOf"]
            prop.update(kept[0])
        else:
            prop["anyOf"] = kept
        if prop.get("default", ...) is None:
            del prop["default"]


def _update_schema(schema: dict[str, Any]) -> None:
    absent_not_null(schema)
    schema["minProperties"] = 1


class Command(BaseModel):
    """A request body's fields, validated: strict types, no unknown fields, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    # The largest body the route reads for this command; larger is a 400 before any parsing.
    MAX_BODY_BYTES: ClassVar[int] = 1024


class CreateProduct(Command):
    """Body of POST /products."""

    MAX_BODY_BYTES: ClassVar[int] = MAX_BODY_BYTES

    name: Name
    description: Description = ""
    price_cents: PriceCents
    currency: Currency
    stock: Stock


class UpdateProduct(Command):
    """Body of PATCH /products/{id}: any non-empty subset of the product's fields."""

    model_config = ConfigDict(json_schema_extra=_update_schema)
    MAX_BODY_BYTES: ClassVar[int] = MAX_BODY_BYTES

    name: Name | None = None
    description: Description | None = None
    price_cents: PriceCents | None = None
    currency: Currency | None = None
    stock: Stock | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # None here only means "absent"; an explicit null would erase a required attribute.
        if value is None:
            raise PydanticCustomError("null", "must not be null (leave the field out to keep it)")
        return value

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "int_type": "must be an integer",
    "string_type": "must be a string",
    "string_too_short": "must not be empty",
    "string_pattern_mismatch": None,  # depends on the field, see _pattern_message
    "model_type": "must be a JSON object",
}


def _pattern_message(field_name: str) -> str:
    if field_name == "currency":
        return "must be three upper-case letters (ISO 4217, e.g. EUR)"
    if field_name == "product_id":
        return "must be a product id"
    return "must not be blank"


def _message(error: ErrorDetails, field_name: str) -> str:
    kind = error["type"]
    if kind == "string_pattern_mismatch":
        return _pattern_message(field_name)
    if kind in ("less_than_equal", "greater_than_equal", "string_too_long"):
        ctx: dict[str, Any] = error.get("ctx", {})
        if "le" in ctx:
            return f"must be at most {ctx['le']:,}"
        if "ge" in ctx:
            return f"must be at least {ctx['ge']:,}"
        return f"must be at most {ctx.get('max_length'):,} characters"
    return _MESSAGES.get(kind) or error["msg"]


C = TypeVar("C", bound=BaseModel)


def parse_command(model: type[C], data: Any) -> C:
    """Validate `data` (parsed JSON) into `model`; raises InvalidField naming the first bad field."""
    from pydantic import ValidationError

    if not isinstance(data, dict):
        raise InvalidField("body", "must be a JSON object", Violation.WRONG_TYPE)
    try:
        command = model.model_validate(data)
    except ValidationError as exc:
        order = list(model.model_fields)
        errors = sorted(exc.errors(), key=lambda e: order.index(e["loc"][0])
                        if e["loc"] and e["loc"][0] in order else len(order))
        first = errors[0]
        field_name = ".".join(str(p) for p in first["loc"]) or "body"
        kind = _KINDS.get(first["type"], Violation.INVALID)
        raise InvalidField(field_name, _message(first, field_name), kind) from None
    if isinstance(command, UpdateProduct) and not command.changes():
        raise InvalidField("body", "names no field to change", Violation.NO_CHANGE)
    return command


class PlaceOrder(Command):
    """Body of POST /orders."""

    # {"product_id": 26 characters, "quantity": 1..100, "payment_method": <= 123}: 1 KiB is plenty.
    product_id: Annotated[str, StringConstraints(pattern=rf"^{ID_REGEX}$")]  # rust regex: $ = end
    quantity: Annotated[int, Field(ge=MIN_QUANTITY, le=MAX_QUANTITY, strict=True)]
    # A token the client got from the payment provider (API.md, Payments), e.g. "pm_card_visa".
    payment_method: Annotated[str, StringConstraints(pattern=rf"^{PAYMENT_METHOD_REGEX}$")]
