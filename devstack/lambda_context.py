"""What Lambda hands a function besides its event: the context object, and the settings behind it."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

__all__ = ["FunctionSettings", "LambdaContext", "function_arn"]


@dataclass(frozen=True)
class FunctionSettings:
    """The Lambda settings that shape an invocation."""

    timeout_seconds: float
    memory_mb: int


def function_arn(region: str, account_id: str, function_name: str) -> str:
    return f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"


class LambdaContext:
    """The context object of Lambda's Python runtime, for one invocation.

    As in the runtime, `memory_limit_in_mb` is a string (it is read from an environment variable).
    """

    def __init__(
        self,
        function_name: str,
        *,
        settings: FunctionSettings,
        region: str,
        account_id: str,
        aws_request_id: str | None = None,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function_arn(region, account_id, function_name)
        self.memory_limit_in_mb = str(settings.memory_mb)
        self.aws_request_id = aws_request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = (
            f"{datetime.now(timezone.utc):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        )
        self.client_context = None
        self.identity = None
        self._deadline = time.monotonic() + settings.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's timeout, never below zero."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    def fields(self) -> dict[str, Any]:
        """What a container process needs to rebuild this context (see `resumed`)."""
        return {name: getattr(self, name) for name in _CONTEXT_FIELDS}

    @classmethod
    def resumed(cls, fields: dict[str, Any], remaining_ms: int) -> LambdaContext:
        """This context rebuilt in a container process, its deadline counted from arrival."""
        context = cls.__new__(cls)
        context.__dict__.update(fields, client_context=None, identity=None,
                                _deadline=time.monotonic() + remaining_ms / 1000)
        return context


_CONTEXT_FIELDS = ("function_name", "function_version", "invoked_function_arn", "memory_limit_in_mb",
                   "aws_request_id", "log_group_name", "log_stream_name")
