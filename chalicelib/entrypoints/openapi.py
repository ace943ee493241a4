"""The OpenAPI 3.1 document of the HTTP API, built from the pydantic models that validate requests.

Request bodies come from chalicelib.domain.commands / image_commands (the models the routes parse
with); the responses' shapes are declared once here, as pydantic models, and the contract tests
(schemathesis against the running stack) hold every answer of the API to them. Every limit, pattern
and status the document states is read from the code that enforces it (the id pattern, the
commands' bounds, the domain's statuses, the list limit, the error table of
chalicelib.entrypoints.errors), so the document cannot promise what the code does not do.
Imported only by `GET /openapi.json`, inside the route: pydantic stays off the read path's cold start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Literal, Optional, TypeAlias

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from chalicelib.domain import images, imports
from chalicelib.domain.commands import (
    MIN_QUANTITY, Command, CreateProduct, Currency, PlaceOrder, PriceCents, Stock, UpdateProduct,
    absent_not_null,
)
from chalicelib.domain.idempotency import HEADER as IDEMPOTENCY_HEADER
from chalicelib.domain.idempotency import KEY_REGEX as IDEMPOTENCY_KEY_REGEX
from chalicelib.domain.identity import USER_ID_REGEX
from chalicelib.domain.ids import ID_REGEX
from chalicelib.domain.image_commands import RequestImageUpload
from chalicelib.domain.orders import MAX_QUANTITY, QUEUED, OrderStatus, Reason
from chalicelib.domain.payments import DECLINE_REASONS, PaymentStatus
from chalicelib.entrypoints.errors import BY_STATUS, AnsweredBy
from chalicelib.entrypoints.http_common import IF_MATCH_REGEX, LIMIT_DEFAULT, LIMIT_MAX

__all__ = ["OPERATIONS", "Operation", "document"]

_DATE_TIME = Field(json_schema_extra={"format": "date-time"})
_ID = rf"^{ID_REGEX}$"  # pydantic's (Rust) regex: $ is the end, as \Z in Python's


def _one_of(values: Iterable[str]) -> Any:
    """Literal[*values]: the domain's own constants (str() of a StrEnum member is its value), written
    by pydantic as the schema's enum, or const for one value."""
    return Literal[tuple(str(value) for value in values)]


if TYPE_CHECKING:  # Literal takes only literals, for mypy; these fields are strings to it
    _ImageStatus: TypeAlias = str
    _OrderStatus: TypeAlias = str
    _Reason: TypeAlias = str
    _PaymentStatus: TypeAlias = str
    _ImportStatus: TypeAlias = str
    _Queued: TypeAlias = str
else:
    _ImageStatus = _one_of(images.ImageStatus)
    _OrderStatus = _one_of(OrderStatus)
    _Reason = _one_of([*Reason, *sorted(DECLINE_REASONS - set(Reason))])
    _PaymentStatus = _one_of(PaymentStatus)
    _ImportStatus = _one_of(imports.ImportStatus)
    _Queued = _one_of((QUEUED,))


class _Shape(BaseModel):
    # Responses carry exactly these fields (an extra one is drift the contract tests should catch);
    # an optional one is left out rather than sent as null.
    model_config = ConfigDict(extra="forbid", json_schema_extra=absent_not_null)


class Error(_Shape):
    """Chalice's error shape; `Message` names the field, header or parameter at fault."""

    Code: str
    Message: str


class GatewayError(BaseModel):
    """What API Gateway itself answers (413 over its 10 MB payload limit), before the app runs."""

    message: str


class Health(_Shape):
    status: Literal["ok"]


class Renditions(_Shape):
    """Presigned GET URLs of the renditions, made at every read (they expire)."""

    small: Optional[str] = None
    medium: Optional[str] = None
    large: Optional[str] = None


class ProductImage(_Shape):
    id: str = Field(pattern=_ID)
    status: _ImageStatus
    error: Optional[str] = Field(None, description="why a failed image failed, for a person")
    width: Optional[int] = Field(None, ge=1)
    height: Optional[int] = Field(None, ge=1)
    renditions: Renditions


class Product(_Shape):
    id: str = Field(pattern=_ID)
    owner: str = Field(description="the owner's user id (their ID token's sub)")
    name: str
    description: str
    price_cents: PriceCents
    currency: Currency
    stock: Stock
    version: int = Field(ge=1, description="starts at 1, one more on every change; the ETag")
    created_at: str = _DATE_TIME
    updated_at: str = _DATE_TIME
    images: list[ProductImage]


class ProductPage(_Shape):
    items: list[Product]
    next_cursor: Optional[str] = Field(description="pass back as ?cursor= for the next page; null at the end")


class OrderAccepted(_Shape):
    order_id: str = Field(pattern=_ID)
    status: _Queued


class OrderPayment(_Shape):
    status: _PaymentStatus
    reference: Optional[str] = Field(None, description="the payment provider's id of the payment")


class OrderHistoryEntry(_Shape):
    status: _OrderStatus
    at: str = _DATE_TIME
    reason: Optional[_Reason] = None


class Order(_Shape):
    order_id: str = Field(pattern=_ID)
    product_id: str = Field(pattern=_ID)
    quantity: int = Field(ge=MIN_QUANTITY, le=MAX_QUANTITY)
    status: _OrderStatus
    reason: Optional[_Reason] = None
    amount_cents: Optional[int] = Field(description="price x quantity when the stock was reserved; null while queued")
    currency: Optional[str] = Field(description="the product's currency; null while queued")
    payment: OrderPayment
    history: list[OrderHistoryEntry] = Field(description="every status the order went through, oldest first")
    created_at: str = _DATE_TIME
    updated_at: str = _DATE_TIME


class OrderPage(_Shape):
    items: list[Order]
    next_cursor: Optional[str] = Field(description="pass back as ?cursor= for the next page; null at the end")


class SalesTotals(_Shape):
    orders: int = Field(description="confirmed orders less the confirmed ones cancelled since")
    units: int
    revenue_cents: int = Field(description="the amounts the buyers paid, in the products' currencies' cents")


class ProductSalesRow(_Shape):
    product_id: str = Field(pattern=_ID)
    name: str = Field(description="the product's newest name (its name when sold, for a deleted product)")
    orders: int
    units: int
    revenue_cents: int


class Sales(_Shape):
    """The caller's sales, from the read model the domain events keep (it trails the orders by
    their events' delivery, a second or two)."""

    totals: SalesTotals
    products: list[ProductSalesRow] = Field(description="the caller's products with sales, best revenue first")
    as_of: Optional[str] = Field(json_schema_extra={"format": "date-time"},
                                 description="when the numbers last changed; null before the first sale")


class PresignedPost(_Shape):
    """An S3 presigned POST: send every field of `fields`, then the file last, to `url`."""

    url: str
    fields: dict[str, str]


class ImageUploadTicket(_Shape):
    image_id: str = Field(pattern=_ID)
    upload: PresignedPost


class ImportStarted(_Shape):
    job_id: str = Field(pattern=_ID)
    upload: PresignedPost


class RowError(_Shape):
    row: int = Field(ge=1)
    message: str


class ImportJob(_Shape):
    job_id: str = Field(pattern=_ID)
    status: _ImportStatus
    rows_total: int = Field(ge=0)
    rows_imported: int = Field(ge=0)
    rows_failed: int = Field(ge=0)
    chunks_total: int = Field(ge=0)
    chunks_done: int = Field(ge=0)
    errors: list[RowError] = Field(max_length=imports.MAX_ERRORS,
                                   description=f"the first {imports.MAX_ERRORS} rows that failed")
    created_at: str = _DATE_TIME
    updated_at: str = _DATE_TIME
    finished_at: Optional[str] = _DATE_TIME


_REQUESTS: tuple[type[Command], ...] = (CreateProduct, UpdateProduct, PlaceOrder, RequestImageUpload)
_BODY_LIMITS = {model.__name__: model.MAX_BODY_BYTES for model in _REQUESTS}  # what each route reads
_RESPONSES: tuple[type[BaseModel], ...] = (
    Error, GatewayError, Health, Product, ProductPage, OrderAccepted, Order, OrderPage, ImageUploadTicket,
    ImportStarted, ImportJob, Sales)


@dataclass(frozen=True)
class Operation:
    """One route of the API as the document tells it."""

    method: str
    path: str
    operation_id: str
    summary: str
    success: int
    response: str | None  # a schema of _RESPONSES, or None for no body
    errors: tuple[int, ...]
    auth: bool = False
    body: str | None = None  # a schema of _REQUESTS
    parameters: tuple[str, ...] = ()
    success_headers: tuple[str, ...] = ()
    links: dict[str, Any] = field(default_factory=dict)
    notes: dict[int, str] = field(default_factory=dict)


# Chalice answers 415 on any route before it runs (it checks Content-Type even on a GET); body routes
# can also meet API Gateway's 413; routes with a token 401, and 503 when the JWKS is unreachable.
_BODY = (400, 413, 415)
_TOKEN = (401, 503)

_PRODUCT_LINKS = {
    "GetProduct": {"operationId": "getProduct", "parameters": {"product_id": "$response.body#/id"}},
    "UpdateProduct": {"operationId": "updateProduct", "parameters": {
        "product_id": "$response.body#/id", "header.If-Match": "$response.header.ETag"}},
    "DeleteProduct": {"operationId": "deleteProduct", "parameters": {
        "product_id": "$response.body#/id", "header.If-Match": "$response.header.ETag"}},
    "RequestImageUpload": {"operationId": "requestImageUpload",
                           "parameters": {"product_id": "$response.body#/id"}},
    "PlaceOrder": {"operationId": "placeOrder", "requestBody": {
        "product_id": "$response.body#/id", "quantity": 1, "payment_method": "pm_card_visa"}},
}

OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/health", "health", "Liveness", 200, "Health", (415,)),
    Operation("GET", "/openapi.json", "openapi", "This document", 200, None, (415,)),
    Operation("POST", "/products", "createProduct", "Create a product owned by the caller", 201, "Product",
              (*_BODY, *_TOKEN, 409), auth=True, body="CreateProduct", parameters=("IdempotencyKey",),
              success_headers=("ETag", "Location", "Idempotent-Replayed"), links=_PRODUCT_LINKS,
              notes={409: "The Idempotency-Key was used with a different body"}),
    Operation("GET", "/products", "listProducts", "List products, newest first", 200, "ProductPage",
              (400, 415, 503), parameters=("Limit", "Cursor", "Owner")),
    Operation("GET", "/products/{product_id}", "getProduct", "Read a product", 200, "Product",
              (404, 415, 503), parameters=("ProductId",), success_headers=("ETag",)),
    Operation("PATCH", "/products/{product_id}", "updateProduct", "Change some fields (owner only)", 200,
              "Product", (*_BODY, *_TOKEN, 403, 404, 412, 428), auth=True, body="UpdateProduct",
              parameters=("ProductId", "IfMatchRequired"), success_headers=("ETag",),
              links={"GetProduct": _PRODUCT_LINKS["GetProduct"],
                     "DeleteProduct": _PRODUCT_LINKS["DeleteProduct"]}),
    Operation("DELETE", "/products/{product_id}", "deleteProduct", "Delete a product and its images (owner only)",
              204, None, (400, 415, *_TOKEN, 403, 404, 412), auth=True,
              parameters=("ProductId", "IfMatch")),
    Operation("POST", "/products/{product_id}/images", "requestImageUpload",
              "A presigned S3 POST for a new image of the product (owner only)", 201, "ImageUploadTicket",
              (*_BODY, *_TOKEN, 403, 404, 409), auth=True, body="RequestImageUpload",
              parameters=("ProductId",),
              notes={409: f"The product already holds {images.MAX_IMAGES_PER_PRODUCT} images"}),
    Operation("POST", "/orders", "placeOrder",
              "Queue an order; a consumer reserves its stock (or rejects it), then a saga takes the payment", 202,
              "OrderAccepted", (*_BODY, *_TOKEN, 409), auth=True, body="PlaceOrder",
              parameters=("IdempotencyKey",), success_headers=("Location", "Idempotent-Replayed"),
              links={"GetOrder": {"operationId": "getOrder",
                                  "parameters": {"order_id": "$response.body#/order_id"}}},
              notes={409: "The Idempotency-Key was used with a different body"}),
    Operation("GET", "/orders", "listOrders", "The caller's orders, newest first", 200, "OrderPage",
              (400, 415, *_TOKEN), auth=True, parameters=("Limit", "Cursor", "OrderStatus")),
    Operation("GET", "/orders/{order_id}", "getOrder", "Read an order (buyer only)", 200, "Order",
              (415, *_TOKEN, 403, 404), auth=True, parameters=("OrderId",)),
    Operation("POST", "/orders/{order_id}/cancel", "cancelOrder",
              "Cancel an order (buyer only): it ends `cancelled`, paid money refunded, stock put back", 202,
              "Order", (400, 415, *_TOKEN, 403, 404, 409), auth=True, parameters=("OrderId",),
              notes={400: "A body other than none or {}: the cancel takes no fields",
                     409: "The order has ended (rejected, payment_failed, cancelled, failed)"}),
    Operation("GET", "/sellers/me/sales", "getMySales",
              "The caller's sales as a seller: confirmed orders less cancelled ones, per product and in total",
              200, "Sales", (415, *_TOKEN), auth=True),
    Operation("POST", "/imports", "createImport",
              "Start a CSV import: a pending job and a presigned S3 POST for the file", 201, "ImportStarted",
              (*_BODY, *_TOKEN), auth=True, success_headers=("Location",),
              links={"GetImport": {"operationId": "getImport",
                                   "parameters": {"job_id": "$response.body#/job_id"}}}),
    Operation("GET", "/imports/{job_id}", "getImport", "Watch an import (importer only)", 200, "ImportJob",
              (415, *_TOKEN, 403, 404), auth=True, parameters=("JobId",)),
)


def _path_id(name: str, what: str) -> dict[str, Any]:
    # Any string is accepted and an id that cannot exist is a 404, so the schema is a plain string.
    return {"name": name, "in": "path", "required": True, "description": f"the {what}'s id (a ULID)",
            "schema": {"type": "string", "minLength": 1}}


def _if_match(required: bool) -> dict[str, Any]:
    return {"name": "If-Match", "in": "header", "required": required,
            "description": 'the version the change is based on, as the ETag gave it: "3" (W/"3" and 3 '
                           "are read the same)",
            "schema": {"type": "string", "pattern": rf"^{IF_MATCH_REGEX}$"}}


_PARAMETERS: dict[str, dict[str, Any]] = {
    "Limit": {"name": "limit", "in": "query", "required": False,
              "schema": {"type": "integer", "minimum": 1, "maximum": LIMIT_MAX, "default": LIMIT_DEFAULT}},
    "Cursor": {"name": "cursor", "in": "query", "required": False,
               "description": "next_cursor of the previous page, unchanged",
               "schema": {"type": "string", "minLength": 1}},
    "Owner": {"name": "owner", "in": "query", "required": False, "description": "only this user's products",
              "schema": {"type": "string", "pattern": rf"^{USER_ID_REGEX}$"}},
    "ProductId": _path_id("product_id", "product"),
    "OrderId": _path_id("order_id", "order"),
    "OrderStatus": {"name": "status", "in": "query", "required": False, "description": "only orders in this status",
                    "schema": {"type": "string", "enum": [str(status) for status in OrderStatus]}},
    "JobId": _path_id("job_id", "import job"),
    "IdempotencyKey": {"name": IDEMPOTENCY_HEADER, "in": "header", "required": False,
                       "description": "the same key and body from the same caller answer the first response "
                                      "again (kept at least 24 hours); another body with the key is a 409",
                       "schema": {"type": "string", "pattern": rf"^{IDEMPOTENCY_KEY_REGEX}$"}},
    "IfMatchRequired": _if_match(True),
    "IfMatch": _if_match(False),
}

_PATH_PARAMETERS = {p["name"]: key for key, p in _PARAMETERS.items() if p["in"] == "path"}

_HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-Id": {"description": "this request's id (the client's own X-Request-Id when it sent a sane one)",
                     "schema": {"type": "string"}},
    "X-Amzn-Trace-Id": {"description": "the X-Ray trace of this request, when traced", "schema": {"type": "string"}},
    "ETag": {"description": 'the product\'s version, quoted: "3"', "schema": {"type": "string"}},
    "Location": {"description": "where the created resource is read", "schema": {"type": "string"}},
    "Idempotent-Replayed": {"description": "true when this is the stored answer to an earlier request",
                            "schema": {"type": "string", "enum": ["true"]}},
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "string"}},
    "WWW-Authenticate": {"description": "Bearer challenge", "schema": {"type": "string"}},
    "Allow": {"description": "the methods this path accepts", "schema": {"type": "string"}},
    "Access-Control-Allow-Origin": {
        "description": "the request's Origin, only when it is one of CORS_ALLOW_ORIGINS (none by default)",
        "schema": {"type": "string"}},
    "Access-Control-Allow-Methods": {"description": "for an allowed Origin", "schema": {"type": "string"}},
    "Access-Control-Allow-Headers": {"description": "for an allowed Origin", "schema": {"type": "string"}},
    "Access-Control-Max-Age": {"description": "for an allowed Origin", "schema": {"type": "string"}},
}


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref("schemas", schema)}}


def _success(op: Operation) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": op.summary,
        "headers": {name: _ref("headers", name) for name in ("X-Request-Id", *op.success_headers)}}
    if op.operation_id == "openapi":
        answer["content"] = {"application/json": {"schema": {"type": "object"}}}
    elif op.response is not None:
        answer["content"] = _json(op.response)
    if op.links:
        answer["links"] = op.links
    return answer


def _error(op: Operation, status: int) -> dict[str, Any]:
    answer = BY_STATUS[status]
    description = op.notes.get(status, answer.description)
    if answer.answered_by is AnsweredBy.API_GATEWAY:  # neither the app's shape nor its headers
        return {"description": description, "content": _json("GatewayError")}
    headers = {name: _ref("headers", name) for name in ("X-Request-Id", *answer.headers)}
    return {"description": description, "headers": headers, "content": _json("Error")}


def _operation(op: Operation) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": op.operation_id, "summary": op.summary,
        "parameters": [_ref("parameters", name) for name in op.parameters],
        "responses": {str(op.success): _success(op),
                      **{str(status): _error(op, status) for status in sorted(op.errors)}},
        "security": [{"cognitoIdToken": []}] if op.auth else [],
    }
    if op.body is not None:
        doc["requestBody"] = {"required": True, "content": _json(op.body),
                              "description": f"JSON, at most {_BODY_LIMITS[op.body]:,} bytes"}
    elif op.method == "POST":
        doc["requestBody"] = {"required": False, "description": "empty, or {}",
                              "content": {"application/json": {"schema": {
                                  "type": "object", "additionalProperties": False, "maxProperties": 0}}}}
    return doc


def _preflight(path: str) -> dict[str, Any]:
    """The OPTIONS route every path has (chalicelib/entrypoints/cors.py)."""
    name = "".join(part.strip("{}").title().replace("_", "") for part in path.split("/") if part)
    headers = ("X-Request-Id", "Allow", "Access-Control-Allow-Origin", "Access-Control-Allow-Methods",
               "Access-Control-Allow-Headers", "Access-Control-Max-Age")
    return {"operationId": f"preflight{name}", "summary": "CORS preflight (answers any Origin; only an "
                                                          "allowed one gets Access-Control-* headers)",
            "parameters": [_ref("parameters", _PATH_PARAMETERS[part.strip("{}")])
                           for part in path.split("/") if part.startswith("{")],
            "security": [],
            "responses": {"204": {"description": "the path's methods",
                                  "headers": {h: _ref("headers", h) for h in headers}},
                          "415": {"description": BY_STATUS[415].description, "content": _json("Error"),
                                  "headers": {"X-Request-Id": _ref("headers", "X-Request-Id")}}}}


def _schemas() -> dict[str, Any]:
    _, top = models_json_schema([(model, "validation") for model in (*_REQUESTS, *_RESPONSES)],
                                ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = top["$defs"]
    return schemas


def document() -> dict[str, Any]:
    """The whole OpenAPI document (no `servers`: paths are relative to wherever it was fetched)."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    for path, item in paths.items():
        item["options"] = _preflight(path)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Storefront", "version": "1",
                 "description": "Products, orders, images and CSV imports. Errors use Chalice's shape "
                                '{"Code", "Message"}; every response carries X-Request-Id.'},
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "parameters": _PARAMETERS,
            "headers": _HEADERS,
            "securitySchemes": {"cognitoIdToken": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "a Cognito ID token of the storefront's user pool (`make token USER=name`)"}},
        },
    }
    return doc
