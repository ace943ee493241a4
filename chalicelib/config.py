"""Settings read from the environment, once per container.

Every environment variable the app reads is named here and nowhere else. Resource variables are
named by one rule from the logical ids of infra/resources.json (ProductsTable -> PRODUCTS_TABLE);
their values are what CloudFormation's Ref gives (table name, queue URL, topic ARN, ...).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

__all__ = ["Settings", "load_settings", "max_concurrency", "orders_max_concurrency", "import_max_concurrency"]

PRODUCTS_TABLE = "PRODUCTS_TABLE"
IDEMPOTENCY_TABLE = "IDEMPOTENCY_TABLE"
ORDERS_TABLE = "ORDERS_TABLE"
ORDERS_QUEUE = "ORDERS_QUEUE"
ORDER_SAGA_STATE_MACHINE = "ORDER_SAGA_STATE_MACHINE"  # the saga's ARN (a state machine's Ref)
# Read when app.py is imported, because Chalice's decorator needs it then (packaging, too).
ORDERS_MAX_CONCURRENCY = "ORDERS_MAX_CONCURRENCY"
IMPORT_JOBS_TABLE = "IMPORT_JOBS_TABLE"
IMPORTS_BUCKET = "IMPORTS_BUCKET"
IMPORT_CHUNKS_TOPIC = "IMPORT_CHUNKS_TOPIC"
IMPORT_COMPLETED_TOPIC = "IMPORT_COMPLETED_TOPIC"
IMPORT_RETENTION_DAYS = "IMPORT_RETENTION_DAYS"
IMPORT_CHUNK_ROWS = "IMPORT_CHUNK_ROWS"
# Read when app.py is imported, like ORDERS_MAX_CONCURRENCY.
IMPORT_MAX_CONCURRENCY = "IMPORT_MAX_CONCURRENCY"
# The other queue consumers' caps, read the same way (per stage in .chalice/config.json).
IMAGES_MAX_CONCURRENCY = "IMAGES_MAX_CONCURRENCY"
IMPORT_DISPATCH_MAX_CONCURRENCY = "IMPORT_DISPATCH_MAX_CONCURRENCY"
DEAD_LETTERS_MAX_CONCURRENCY = "DEAD_LETTERS_MAX_CONCURRENCY"
READ_MODELS_MAX_CONCURRENCY = "READ_MODELS_MAX_CONCURRENCY"  # the bus's queue consumers
CLEANUP_STATE_TABLE = "CLEANUP_STATE_TABLE"
CLEANUP_MAX_ITEMS = "CLEANUP_MAX_ITEMS"
CLEANUP_MAX_LISTED = "CLEANUP_MAX_LISTED"
USER_POOL = "USER_POOL"
USER_POOL_CLIENT = "USER_POOL_CLIENT"
REGION = "AWS_REGION"
DEFAULT_REGION = "AWS_DEFAULT_REGION"
# Where the pool's public keys are fetched from; only the local stack sets it (moto serves the JWKS
# at its own endpoint while the tokens still name the real cognito-idp issuer).
JWKS_URL = "COGNITO_JWKS_URL"
STAGE = "STAGE"
TRACING = "TRACING"  # "xray" (default) or "off"
IDEMPOTENCY_TTL_HOURS = "IDEMPOTENCY_TTL_HOURS"
IMAGES_TABLE = "IMAGES_TABLE"
UPLOADS_BUCKET = "UPLOADS_BUCKET"
MEDIA_BUCKET = "MEDIA_BUCKET"
# How long a rendition URL in a product's JSON stays valid; presigned at every read.
MEDIA_URL_TTL_SECONDS = "MEDIA_URL_TTL_SECONDS"
# The From of the e-mail the app sends ("Name <address>" or an address). On AWS an identity
# verified in SES in the functions' region (the address or its domain); per stage in .chalice/config.json.
MAIL_FROM = "MAIL_FROM"
# Browser origins allowed to call the API (comma-separated, exact, e.g. "https://shop.example.com");
# none by default, so no page on another origin can read an answer.
CORS_ALLOW_ORIGINS = "CORS_ALLOW_ORIGINS"
# The payment provider's API (Stripe's; the local stack points it at its stand-in), and the secret
# holding its API key (a resource of infra/resources.json: the value is the secret's ARN).
PAYMENTS_API_URL = "PAYMENTS_API_URL"
PAYMENTS_API_KEY_SECRET = "PAYMENTS_API_KEY_SECRET"
# The domain events' bus (its name), and the sales read model's table.
EVENT_BUS = "EVENT_BUS"
SALES_TABLE = "SALES_TABLE"


@dataclass(frozen=True)
class Settings:
    stage: str
    region: str
    products_table: str
    idempotency_table: str
    user_pool_id: str
    user_pool_client_id: str
    jwks_url: str
    tracing: str
    idempotency_ttl_hours: int
    images_table: str = ""
    uploads_bucket: str = ""
    media_bucket: str = ""
    media_url_ttl_seconds: int = 3600
    orders_table: str = ""
    orders_queue: str = ""
    order_saga_state_machine: str = ""
    import_jobs_table: str = ""
    imports_bucket: str = ""
    import_chunks_topic: str = ""
    import_completed_topic: str = ""
    import_retention_days: int = 7
    import_chunk_rows: int = 500
    cleanup_state_table: str = ""
    cleanup_max_items: int = 1000
    cleanup_max_listed: int = 20_000
    cors_allow_origins: frozenset[str] = frozenset()
    payments_api_url: str = "https://api.stripe.com"
    payments_api_key_secret: str = ""
    mail_from: str = ""
    event_bus: str = ""
    sales_table: str = ""

    @property
    def issuer(self) -> str:
        """The `iss` Cognito writes into the pool's tokens."""
        return f"https://cognito-idp.{self.region}.amazonaws.com/{self.user_pool_id}"


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise RuntimeError(f"environment variable {name} is not set")
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings; raises RuntimeError naming the first missing variable."""
    env = os.environ if env is None else env
    region = env.get(REGION) or env.get(DEFAULT_REGION) or "us-east-1"
    user_pool_id = _required(env, USER_POOL)
    issuer = f"https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"
    return Settings(
        stage=env.get(STAGE, "dev"),
        region=region,
        products_table=_required(env, PRODUCTS_TABLE),
        idempotency_table=_required(env, IDEMPOTENCY_TABLE),
        user_pool_id=user_pool_id,
        user_pool_client_id=_required(env, USER_POOL_CLIENT),
        jwks_url=env.get(JWKS_URL) or f"{issuer}/.well-known/jwks.json",
        tracing=env.get(TRACING, "xray"),
        idempotency_ttl_hours=int(env.get(IDEMPOTENCY_TTL_HOURS, "48")),
        images_table=env.get(IMAGES_TABLE, ""),
        uploads_bucket=env.get(UPLOADS_BUCKET, ""),
        media_bucket=env.get(MEDIA_BUCKET, ""),
        media_url_ttl_seconds=int(env.get(MEDIA_URL_TTL_SECONDS, "3600")),
        orders_table=env.get(ORDERS_TABLE, ""),
        orders_queue=env.get(ORDERS_QUEUE, ""),
        order_saga_state_machine=env.get(ORDER_SAGA_STATE_MACHINE, ""),
        import_jobs_table=env.get(IMPORT_JOBS_TABLE, ""),
        imports_bucket=env.get(IMPORTS_BUCKET, ""),
        import_chunks_topic=env.get(IMPORT_CHUNKS_TOPIC, ""),
        import_completed_topic=env.get(IMPORT_COMPLETED_TOPIC, ""),
        import_retention_days=int(env.get(IMPORT_RETENTION_DAYS, "7")),
        import_chunk_rows=int(env.get(IMPORT_CHUNK_ROWS, "500")),
        cleanup_state_table=env.get(CLEANUP_STATE_TABLE, ""),
        cleanup_max_items=int(env.get(CLEANUP_MAX_ITEMS, "1000")),
        cleanup_max_listed=int(env.get(CLEANUP_MAX_LISTED, "20000")),
        cors_allow_origins=frozenset(
            o.strip().rstrip("/") for o in env.get(CORS_ALLOW_ORIGINS, "").split(",") if o.strip()),
        payments_api_url=(env.get(PAYMENTS_API_URL) or "https://api.stripe.com").rstrip("/"),
        payments_api_key_secret=env.get(PAYMENTS_API_KEY_SECRET, ""),
        mail_from=env.get(MAIL_FROM, "").strip(),
        event_bus=env.get(EVENT_BUS, ""),
        sales_table=env.get(SALES_TABLE, ""),
    )


def max_concurrency(variable: str, default: int, env: Mapping[str, str] | None = None) -> int:
    """A queue consumer's concurrency cap from ``variable`` (Lambda accepts 2..1000).

    Raises RuntimeError for a value outside that range.
    """
    env = os.environ if env is None else env
    value = int(env.get(variable, str(default)))
    if not 2 <= value <= 1000:
        raise RuntimeError(f"{variable} must be 2..1000, not {value}")
    return value


def orders_max_concurrency(env: Mapping[str, str] | None = None) -> int:
    """The orders consumer's concurrency cap; 2 by default (the levelling itself)."""
    return max_concurrency(ORDERS_MAX_CONCURRENCY, 2, env)


def import_max_concurrency(env: Mapping[str, str] | None = None) -> int:
    """How many import chunks are written at once; 8 by default."""
    return max_concurrency(IMPORT_MAX_CONCURRENCY, 8, env)
