"""The project's own exceptions: adapters raise them, entrypoints turn them into answers."""

from __future__ import annotations

__all__ = [
    "StorefrontError", "InvalidInput", "NotFound", "Forbidden", "Unauthenticated",
    "PreconditionRequired", "VersionMismatch", "IdempotencyConflict", "ConditionNotMet",
    "DependencyUnavailable", "KeyAlreadyUsed", "PoisonMessage",
]


class StorefrontError(Exception):
    """Base of every error the app raises on purpose."""


class InvalidInput(StorefrontError):
    """Input that breaks a rule; `field` names what was wrong (a body field, header or parameter)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(StorefrontError):
    pass


class Forbidden(StorefrontError):
    pass


class Unauthenticated(StorefrontError):
    pass


class PreconditionRequired(StorefrontError):
    pass


class VersionMismatch(StorefrontError):
    def __init__(self, expected: int, current: int) -> None:
        super().__init__(f"version {expected} is stale: the product is at version {current}")
        self.expected = expected
        self.current = current


class IdempotencyConflict(StorefrontError):
    pass


class ConditionNotMet(StorefrontError):
    """A conditional write found the item not as expected; the service decides what that means."""


class DependencyUnavailable(StorefrontError):
    """A service we depend on (the JWKS endpoint, ...) could not be reached."""


class KeyAlreadyUsed(StorefrontError):
    """An idempotency key is already recorded (by this request's twin, or another request)."""


class PoisonMessage(StorefrontError, ValueError):
    """A queue message that no retry can make valid (not a message the app sends, or not the event
    shape the trigger delivers): its record fails, is retried, and ends in the queue's DLQ, where
    a person can read it. A ValueError too, so a bad JSON body and a bad shape are handled alike."""
