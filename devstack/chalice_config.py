"""What the local stack needs from .chalice/config.json: stage variables and per-function limits."""

from __future__ import annotations

import json
from pathlib import Path

from chalice.config import Config

from devstack.lambda_context import FunctionSettings

__all__ = ["StageConfig"]

PROJECT_DIR = Path(__file__).resolve().parent.parent


class StageConfig:
    def __init__(self, stage: str, project_dir: Path = PROJECT_DIR) -> None:
        with open(project_dir / ".chalice" / "config.json", encoding="utf-8") as f:
            self.chalice = Config(chalice_stage=stage, config_from_disk=json.load(f))
        self.stage = stage

    @property
    def app_name(self) -> str:
        return self.chalice.app_name

    @property
    def function_prefix(self) -> str:
        """Chalice names event functions "<app>-<stage>-<handler>"."""
        return f"{self.app_name}-{self.stage}-"

    def environment(self) -> dict[str, str]:
        """The stage's environment variables (chalice local does not apply them in-process)."""
        return dict(self.chalice.environment_variables)

    def function_settings(self, name: str) -> FunctionSettings:
        scoped = self.chalice.scope(self.stage, name)
        return FunctionSettings(timeout_seconds=float(scoped.lambda_timeout or 60),
                                memory_mb=int(scoped.lambda_memory_size or 128))
