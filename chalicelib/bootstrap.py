"""Builds the real adapters once per container; tests call `build` with their own parts."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from chalicelib.adapters.tracing import NoTracer, Tracer
from chalicelib.config import Settings, load_settings
from chalicelib.domain.ids import new_id
from chalicelib.services.products import ProductService

__all__ = ["Container", "build", "container", "install", "utc_now"]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Container:
    settings: Settings
    tracer: Tracer
    products: ProductService
    verifier: object  # CognitoTokenVerifier: .verify(token) -> Caller


def build(settings: Settings | None = None, *, tracer: Tracer | None = None,
          verifier: object | None = None) -> Container:
    """Wire the real adapters for `settings` (read from the environment by default)."""
    from chalicelib.adapters.cognito import CognitoTokenVerifier
    from chalicelib.adapters.dynamodb import PynamoIdempotencyStore, PynamoProductRepository, make_models
    from chalicelib.entrypoints.representations import product_json

    settings = settings or load_settings()
    if tracer is None:
        tracer = NoTracer() if settings.tracing == "off" else _xray_tracer()
    models = make_models(products_table=settings.products_table,
                         idempotency_table=settings.idempotency_table, region=settings.region)
    products = ProductService(
        PynamoProductRepository(models), PynamoIdempotencyStore(models), clock=utc_now,
        new_id=new_id, idempotency_ttl=timedelta(hours=settings.idempotency_ttl_hours),
        render=product_json)
    verifier = verifier or CognitoTokenVerifier(
        issuer=settings.issuer, client_id=settings.user_pool_client_id, jwks_url=settings.jwks_url)
    return Container(settings=settings, tracer=tracer, products=products, verifier=verifier)


def _xray_tracer() -> Tracer:
    from chalicelib.adapters.tracing import XRayTracer

    return XRayTracer(service="storefront")


_CONTAINER: Container | None = None
_LOCK = threading.Lock()


def container() -> Container:
    """The container of this Lambda container (built on first use, then reused)."""
    global _CONTAINER
    if _CONTAINER is None:
        with _LOCK:
            if _CONTAINER is None:
                _CONTAINER = build()
    return _CONTAINER


def install(new: Container | None) -> None:
    """Replace the container (tests and the local stack); None rebuilds from the environment."""
    global _CONTAINER
    with _LOCK:
        _CONTAINER = new
