"""The app wired for integration tests exactly as a Lambda container wires it (bootstrap over the
real adapters), with a handle on the boto3 clients those adapters use, so a test can hook them
(fault injection, counting calls)."""

from __future__ import annotations

from chalicelib import bootstrap
from chalicelib.adapters.aws import AwsClients
from chalicelib.adapters.tracing import Tracer
from chalicelib.config import Settings, load_settings

__all__ = ["install_app", "app_aws"]

_AWS: AwsClients | None = None


def install_app(settings: Settings | None = None, *, tracer: Tracer | None = None,
                clock: bootstrap.Clock = bootstrap.utc_now) -> AwsClients:
    """Install services for `settings` (the environment's by default); their boto3 clients.
    `clock`: the container's time (a test moves it on where the world's time must pass)."""
    global _AWS
    s = settings or load_settings()
    aws = AwsClients(s.region)
    bootstrap.install(bootstrap.bootstrap(s, clients=bootstrap.aws_clients(s, aws=aws, clock=clock), tracer=tracer,
                                          clock=clock))
    _AWS = aws
    return aws


def app_aws() -> AwsClients:
    """The boto3 clients of the services `install_app` installed last (installing them if none)."""
    return _AWS if _AWS is not None else install_app()
