"""Structured JSON logs (Powertools Logger): one logger for the whole app."""

from __future__ import annotations

from aws_lambda_powertools import Logger

__all__ = ["logger"]

# Service name and level come from POWERTOOLS_SERVICE_NAME and LOG_LEVEL (.chalice/config.json).
logger = Logger(utc=True)
