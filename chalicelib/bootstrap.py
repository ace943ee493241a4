"""Builds the real adapters once per container; tests call `build` with their own parts.

Each service is made on first use and then kept: a function builds only what its handler
touches (the API's GET path never creates an SQS or S3 client, which costs ~0.1 s cold).
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Any

from chalicelib.adapters.tracing import NoTracer, Tracer
from chalicelib.config import Settings, load_settings
from chalicelib.domain.ids import new_id

__all__ = ["Container", "build", "container", "install", "utc_now"]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Container:
    def __init__(self, settings: Settings, *, tracer: Tracer | None = None, verifier: Any = None,
                 overrides: dict[str, Any] | None = None) -> None:
        """`overrides` replaces any lazily built part by name (tests: fakes, failing clients)."""
        self.settings = settings
        if tracer is not None:
            self.__dict__["tracer"] = tracer
        if verifier is not None:
            self.__dict__["verifier"] = verifier
        self.__dict__.update(overrides or {})

    @cached_property
    def tracer(self) -> Tracer:
        if self.settings.tracing == "off":
            return NoTracer()
        from chalicelib.adapters.tracing import XRayTracer

        return XRayTracer(service="storefront")

    @cached_property
    def verifier(self) -> Any:
        from chalicelib.adapters.cognito import CognitoTokenVerifier

        s = self.settings
        return CognitoTokenVerifier(issuer=s.issuer, client_id=s.user_pool_client_id, jwks_url=s.jwks_url)

    @cached_property
    def models(self) -> Any:
        from chalicelib.adapters.dynamodb import make_models

        s = self.settings
        return make_models(products_table=s.products_table, idempotency_table=s.idempotency_table,
                           region=s.region)

    @cached_property
    def idempotency_store(self) -> Any:
        from chalicelib.adapters.dynamodb import PynamoIdempotencyStore

        return PynamoIdempotencyStore(self.models)

    @cached_property
    def idempotency_ttl(self) -> timedelta:
        return timedelta(hours=self.settings.idempotency_ttl_hours)

    @cached_property
    def products(self) -> Any:
        from chalicelib.adapters.dynamodb import PynamoProductRepository
        from chalicelib.entrypoints.representations import product_json
        from chalicelib.services.products import ProductService

        return ProductService(PynamoProductRepository(self.models), self.idempotency_store, clock=utc_now,
                              new_id=new_id, idempotency_ttl=self.idempotency_ttl, render=product_json)

    @cached_property
    def sqs(self) -> Any:
        import boto3

        return boto3.client("sqs", region_name=self.settings.region)

    @cached_property
    def order_repository(self) -> Any:
        from chalicelib.adapters.orders_table import PynamoOrderRepository, make_order_model

        model = make_order_model(orders_table=self.settings.orders_table, region=self.settings.region)
        return PynamoOrderRepository(model, self.models)

    @cached_property
    def orders(self) -> Any:
        from chalicelib.adapters.sqs import SqsOrderQueue
        from chalicelib.services.orders import OrderService

        return OrderService(self.order_repository, SqsOrderQueue(self.sqs, self.settings.orders_queue),
                            self.idempotency_store, clock=utc_now, new_id=new_id,
                            idempotency_ttl=self.idempotency_ttl, trace_header=self.tracer.propagation_header)

    @cached_property
    def order_consumer(self) -> Any:
        from chalicelib.services.orders import OrderConsumer

        return OrderConsumer(self.order_repository, clock=utc_now)

    @cached_property
    def image_model(self) -> Any:
        from chalicelib.adapters.image_table import make_image_model

        return make_image_model(images_table=self.settings.images_table, region=self.settings.region)

    @cached_property
    def media(self) -> Any:
        """The media bucket: renditions are written there, and presigned for every product read."""
        from chalicelib.adapters.image_storage import S3MediaBucket

        return S3MediaBucket(lambda: self.s3, self.settings.media_bucket,
                             url_expires_in=self.settings.media_url_ttl_seconds)

    @cached_property
    def images(self) -> Any:
        from chalicelib.adapters.dynamodb import PynamoProductRepository
        from chalicelib.adapters.image_storage import S3UploadBucket
        from chalicelib.adapters.image_table import PynamoImageRepository
        from chalicelib.adapters.pillow_images import PillowImageProcessor  # Pillow itself loads on first use
        from chalicelib.services.images import ImageService

        return ImageService(
            PynamoImageRepository(self.image_model, self.models.product), PynamoProductRepository(self.models),
            S3UploadBucket(lambda: self.s3, self.settings.uploads_bucket), self.media, PillowImageProcessor(),
            tracer=self.tracer, clock=utc_now, new_id=new_id)

    @cached_property
    def s3(self) -> Any:
        import boto3
        from botocore.config import Config

        # SigV4 for presigned URLs and POST policies: boto3 still presigns with SigV2 in us-east-1.
        return boto3.client("s3", region_name=self.settings.region, config=Config(signature_version="s3v4"))

    @cached_property
    def sns(self) -> Any:
        import boto3

        return boto3.client("sns", region_name=self.settings.region)

    @cached_property
    def bulk_dynamodb(self) -> Any:
        """A DynamoDB client for batch writes of requests built from validated data: botocore's
        client-side parameter validation would cost more CPU than the import's own work."""
        import boto3
        from botocore.config import Config

        return boto3.client("dynamodb", region_name=self.settings.region,
                            config=Config(parameter_validation=False, retries={"mode": "standard"}))

    @cached_property
    def import_models(self) -> Any:
        from chalicelib.adapters.import_jobs import make_import_models

        return make_import_models(import_jobs_table=self.settings.import_jobs_table,
                                  region=self.settings.region)

    @cached_property
    def import_jobs(self) -> Any:
        from chalicelib.adapters.import_jobs import PynamoImportJobRepository

        return PynamoImportJobRepository(self.import_models)

    @cached_property
    def imports(self) -> Any:
        from chalicelib.adapters.import_files import S3ImportFiles
        from chalicelib.adapters.import_jobs import DynamoImportWriter
        from chalicelib.adapters.import_topics import SnsImportTopics
        from chalicelib.services.imports import ImportService

        s = self.settings
        return ImportService(
            self.import_jobs, S3ImportFiles(self.s3, s.imports_bucket),
            DynamoImportWriter(self.bulk_dynamodb, self.models, self.import_models),
            SnsImportTopics(self.sns, chunks_topic=s.import_chunks_topic,
                            completed_topic=s.import_completed_topic),
            clock=utc_now, new_id=new_id, retention=timedelta(days=s.import_retention_days),
            chunk_rows=s.import_chunk_rows, trace_header=self.tracer.propagation_header)

    @cached_property
    def cleanup(self) -> Any:
        from chalicelib.adapters.cleanup_stores import (
            DynamoCursors, PynamoCleanupImages, PynamoExpiringRecords, PynamoProductLookup, S3ObjectStore,
            make_cursor_model, make_expiry_model,
        )
        from chalicelib.adapters.import_files import S3ImportFiles
        from chalicelib.domain.cleanup import Limits
        from chalicelib.services.cleanup import CleanupService

        s = self.settings
        return CleanupService(
            images=PynamoCleanupImages(self.image_model, self.models.product),
            products=PynamoProductLookup(self.models.product),
            uploads=S3ObjectStore(lambda: self.s3, s.uploads_bucket),
            media=S3ObjectStore(lambda: self.s3, s.media_bucket),
            cursors=DynamoCursors(make_cursor_model(table=s.cleanup_state_table, region=s.region), utc_now),
            idempotency=PynamoExpiringRecords(make_expiry_model(idempotency_table=s.idempotency_table,
                                                                region=s.region)),
            jobs=self.import_jobs, import_files=S3ImportFiles(self.s3, s.imports_bucket),
            limits=Limits(max_items=s.cleanup_max_items, max_listed=s.cleanup_max_listed))


def build(settings: Settings | None = None, *, tracer: Tracer | None = None, verifier: Any = None,
          **overrides: Any) -> Container:
    """A container for `settings` (read from the environment by default)."""
    return Container(settings or load_settings(), tracer=tracer, verifier=verifier, overrides=overrides)


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
