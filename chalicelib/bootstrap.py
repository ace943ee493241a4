"""The composition root: `bootstrap(settings, *, clients=None) -> Services`.

Handlers call `services()`, which bootstraps once per Lambda container and keeps the result.
Tests call the same `bootstrap` with their own `Clients`: in-memory fakes in unit tests, adapters
over moto in integration tests (`aws_clients(settings, aws=...)`), so every path a handler takes
is wired the way it is in Lambda.

Building is cheap and makes no network call: boto3 clients are made on first use
(adapters/aws.py), pynamodb connects on the first request, Pillow loads on the first decode, and
the JWKS is fetched on the first token. The cleanup's service is built, and its modules imported
(about 6 ms on python3.13), the first time `Services.cleanup` is read: only the hourly cleanup's
container reads it, and every other function's cold start imports this module.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Protocol

from chalicelib.adapters.aws import AwsClients
from chalicelib.adapters.cleanup_cursors import DynamoCursors, bind_cleanup_state_table
from chalicelib.adapters.cognito import CognitoDirectory, CognitoTokenVerifier
from chalicelib.adapters.dynamodb_streams import DynamoChangeStream
from chalicelib.adapters.eventbridge import EventBridgeBus
from chalicelib.adapters.idempotency_table import (
    PynamoExpiringRecords, PynamoIdempotencyStore, PynamoOnce, bind_claims_table, bind_idempotency_table,
)
from chalicelib.adapters.image_table import PynamoCleanupImages, PynamoImageRepository, bind_images_table
from chalicelib.adapters.import_jobs import DynamoImportWriter, PynamoImportJobRepository, bind_import_jobs_table
from chalicelib.adapters.import_topics import SnsImportTopics
from chalicelib.adapters.orders_table import PynamoOrderRepository, bind_orders_table
from chalicelib.adapters.pillow_images import PillowImageProcessor
from chalicelib.adapters.products_table import PynamoProductLookup, PynamoProductRepository, bind_products_table
from chalicelib.adapters.s3 import RENDITION_CACHE_CONTROL, S3Bucket
from chalicelib.adapters.sales_table import PynamoSalesProjection, PynamoSalesSources, bind_sales_table
from chalicelib.adapters.ses_mail import SesMailer
from chalicelib.adapters.sqs import SqsOrderQueue
from chalicelib.adapters.step_functions import StepFunctionsOrderSagas
from chalicelib.adapters.stripe_payments import StripePayments
from chalicelib.adapters.tracing import NoTracer, Tracer
from chalicelib.config import Settings, load_settings
from chalicelib.domain.events import EventSource
from chalicelib.domain.identity import TokenVerifier
from chalicelib.domain.ids import new_id
from chalicelib.services.events import ChangePublisher, ChangeStream, EventBus, LostChanges
from chalicelib.services.images import ImageProcessor, ImageRepository, ImageService, MediaBucket, UploadBucket
from chalicelib.services.imports import ImportFiles, ImportJobRepository, ImportService, ImportTopics, ImportWriter
from chalicelib.services.order_saga import OrderSaga, PaymentProvider
from chalicelib.services.orders import OrderConsumer, OrderQueue, OrderRepository, OrderSagas, OrderService
from chalicelib.services.low_stock import LowStockNotifier, Once
from chalicelib.services.products import ProductRepository, ProductService
from chalicelib.services.sales import SalesProjection, SalesService, SalesSources
from chalicelib.services.shared import Clock, Directory, IdempotencyStore, IdFactory, Mailer, TraceHeader

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from chalicelib.services.cleanup import (
        CleanupImages, CleanupService, Cursors, ExpiredJobs, ExpiringRecords, ObjectStore, ProductLookup,
    )

    # One object serves each bucket and the job table; these are the ports it serves at once.
    class UploadsBucket(UploadBucket, ObjectStore, Protocol):
        pass

    class MediaStore(MediaBucket, ObjectStore, Protocol):
        def url(self, key: str) -> str:
            """A presigned GET of a rendition, made at read time (it expires)."""

    class ImportsBucket(ImportFiles, ObjectStore, Protocol):
        pass

    class ImportJobs(ImportJobRepository, ExpiredJobs, Protocol):
        pass

__all__ = ["Services", "Clients", "bootstrap", "aws_clients", "services", "install", "utc_now"]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Clients:
    """Everything outside the process that the services talk to, each behind its port."""

    verifier: TokenVerifier
    products: ProductRepository
    idempotency: IdempotencyStore
    orders: OrderRepository
    order_queue: OrderQueue
    order_sagas: OrderSagas
    payments: PaymentProvider
    mailer: Mailer
    directory: Directory
    images: ImageRepository
    uploads: UploadsBucket
    media: MediaStore
    image_processor: ImageProcessor
    import_jobs: ImportJobs
    import_files: ImportsBucket
    import_writer: ImportWriter
    import_topics: ImportTopics
    cleanup_images: CleanupImages
    product_lookup: ProductLookup
    cursors: Cursors
    expiring_records: ExpiringRecords
    event_bus: EventBus
    change_stream: ChangeStream
    sales: SalesProjection
    sales_sources: SalesSources
    once: Once


@dataclass(frozen=True)
class Services:
    """What handlers use: the use cases, wired, and the few things the edges need."""

    settings: Settings
    tracer: Tracer
    verifier: TokenVerifier
    rendition_url: Callable[[str], str]
    products: ProductService
    orders: OrderService
    order_consumer: OrderConsumer
    order_saga: OrderSaga
    images: ImageService
    imports: ImportService
    publisher: ChangePublisher
    lost_changes: LostChanges
    sales: SalesService
    low_stock: LowStockNotifier
    build_cleanup: Callable[[], CleanupService] = field(repr=False)

    @cached_property
    def cleanup(self) -> CleanupService:
        """Built on first use (see the module's docstring)."""
        return self.build_cleanup()


def aws_clients(settings: Settings, *, aws: AwsClients | None = None, clock: Clock = utc_now,
                trace_header: TraceHeader = lambda: None) -> Clients:
    """The real adapters for `settings`' resources; `aws` holds the boto3 clients (made on first
    use), so a test can reach the same clients the adapters use. `trace_header`: the current X-Ray
    header, which product and order writes keep on the item for their stream's events."""
    s = settings
    aws = aws or AwsClients(s.region)
    product = bind_products_table(table=s.products_table, region=s.region)
    idempotency = bind_idempotency_table(table=s.idempotency_table, region=s.region)
    image = bind_images_table(table=s.images_table, region=s.region)
    order = bind_orders_table(table=s.orders_table, region=s.region)
    import_models = bind_import_jobs_table(table=s.import_jobs_table, region=s.region)
    import_jobs = PynamoImportJobRepository(import_models)

    def s3() -> S3Client:
        return aws.s3

    imports_bucket = S3Bucket(s3, s.imports_bucket)
    return Clients(
        verifier=CognitoTokenVerifier(issuer=s.issuer, client_id=s.user_pool_client_id, jwks_url=s.jwks_url),
        products=PynamoProductRepository(product, idempotency, trace_header=trace_header),
        idempotency=PynamoIdempotencyStore(idempotency),
        orders=PynamoOrderRepository(order, product, idempotency, trace_header=trace_header),
        order_queue=SqsOrderQueue(lambda: aws.sqs, s.orders_queue),
        order_sagas=StepFunctionsOrderSagas(lambda: aws.stepfunctions, s.order_saga_state_machine),
        payments=StripePayments(lambda: aws.secretsmanager, s.payments_api_key_secret, api_url=s.payments_api_url),
        mailer=SesMailer(lambda: aws.sesv2, s.mail_from),
        directory=CognitoDirectory(lambda: aws.cognito_idp, s.user_pool_id),
        images=PynamoImageRepository(image, product),
        uploads=S3Bucket(s3, s.uploads_bucket),
        media=S3Bucket(s3, s.media_bucket, url_expires_in=s.media_url_ttl_seconds,
                       cache_control=RENDITION_CACHE_CONTROL),
        image_processor=PillowImageProcessor(),
        import_jobs=import_jobs,
        import_files=imports_bucket,
        import_writer=DynamoImportWriter(lambda: aws.dynamodb_bulk, product, import_models),
        import_topics=SnsImportTopics(lambda: aws.sns, chunks_topic=s.import_chunks_topic,
                                      completed_topic=s.import_completed_topic),
        cleanup_images=PynamoCleanupImages(image, product),
        product_lookup=PynamoProductLookup(product),
        cursors=DynamoCursors(bind_cleanup_state_table(table=s.cleanup_state_table, region=s.region), clock),
        expiring_records=PynamoExpiringRecords(idempotency),
        event_bus=EventBridgeBus(lambda: aws.events, s.event_bus),
        change_stream=DynamoChangeStream(lambda: aws.dynamodbstreams),
        sales=PynamoSalesProjection(bind_sales_table(table=s.sales_table, region=s.region), clock),
        sales_sources=PynamoSalesSources(order, product),
        # The lease outlives the mail consumer's 30 s timeout: a claim is taken over only once its
        # holder is surely gone. Kept a week: longer than any redelivery or archive replay window.
        once=PynamoOnce(bind_claims_table(table=s.idempotency_table, region=s.region), lease_seconds=60,
                        keep_days=7, clock=clock),
    )


def bootstrap(settings: Settings | None = None, *, clients: Clients | None = None, tracer: Tracer | None = None,
              clock: Clock = utc_now, ids: IdFactory = new_id) -> Services:
    """Wire the services for `settings` (read from the environment by default) over `clients`
    (the real AWS adapters by default). `tracer`: X-Ray unless settings say tracing is off."""
    s = settings or load_settings()
    if tracer is None:
        tracer = _tracer(s)
    c = clients or aws_clients(s, clock=clock, trace_header=tracer.propagation_header)
    ttl = timedelta(hours=s.idempotency_ttl_hours)

    def cleanup() -> CleanupService:
        from chalicelib.domain.cleanup import Limits
        from chalicelib.services.cleanup import CleanupService

        return CleanupService(
            images=c.cleanup_images, products=c.product_lookup, uploads=c.uploads, media=c.media,
            cursors=c.cursors, idempotency=c.expiring_records, jobs=c.import_jobs, import_files=c.import_files,
            limits=Limits(max_items=s.cleanup_max_items, max_listed=s.cleanup_max_listed))

    return Services(
        settings=s,
        tracer=tracer,
        verifier=c.verifier,
        rendition_url=c.media.url,
        products=ProductService(c.products, c.idempotency, clock=clock, new_id=ids, idempotency_ttl=ttl),
        orders=OrderService(c.orders, c.order_queue, c.order_sagas, c.idempotency, clock=clock, new_id=ids,
                            idempotency_ttl=ttl, trace_header=tracer.propagation_header),
        order_consumer=OrderConsumer(c.orders, c.order_sagas, clock=clock, trace_header=tracer.propagation_header),
        order_saga=OrderSaga(c.orders, c.payments, c.mailer, c.directory, clock=clock),
        images=ImageService(c.images, c.products, c.uploads, c.media, c.image_processor, tracer=tracer,
                            clock=clock, new_id=ids),
        imports=ImportService(c.import_jobs, c.import_files, c.import_writer, c.import_topics, clock=clock,
                              new_id=ids, retention=timedelta(days=s.import_retention_days),
                              chunk_rows=s.import_chunk_rows, trace_header=tracer.propagation_header),
        publisher=ChangePublisher(c.event_bus),
        lost_changes=LostChanges(c.change_stream, c.event_bus, _sources_by_stream(s)),
        sales=SalesService(c.sales, c.sales_sources, clock=clock),
        low_stock=LowStockNotifier(c.mailer, c.directory, c.once),
        build_cleanup=cleanup,
    )


def _sources_by_stream(settings: Settings) -> Callable[[str], EventSource | None]:
    """Which table a stream ARN (`arn:...:table/<name>/stream/<label>`) belongs to."""
    tables = {settings.products_table: EventSource.PRODUCTS, settings.orders_table: EventSource.ORDERS}

    def source_of(stream_arn: str) -> EventSource | None:
        return tables.get(stream_arn.partition(":table/")[2].partition("/stream/")[0])

    return source_of


def _tracer(settings: Settings) -> Tracer:
    if settings.tracing == "off":
        return NoTracer()
    from chalicelib.adapters.tracing import XRayTracer

    return XRayTracer(service="storefront")


_SERVICES: Services | None = None
_LOCK = threading.Lock()


def services() -> Services:
    """This Lambda container's services (bootstrapped on first use, then reused)."""
    global _SERVICES
    if _SERVICES is None:
        with _LOCK:
            if _SERVICES is None:
                _SERVICES = bootstrap()
    return _SERVICES


def install(new: Services | None) -> None:
    """Replace the container's services (tests, and the local stack's in-process server); None
    bootstraps again from the environment on next use."""
    global _SERVICES
    with _LOCK:
        _SERVICES = new
