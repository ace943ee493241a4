"""The one definition of the storefront's resources, and the rule that names them for the app.

Importable by the local stack and by packaging; never by ``chalicelib`` (Lambda reads the
env vars this module names, not the template).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

__all__ = [
    "NON_APP_RESOURCE_TYPES",
    "TEMPLATE_PATH",
    "DEFINITION_FILE",
    "app_resources",
    "env_var_name",
    "load_template",
]

TEMPLATE_PATH = Path(__file__).with_name("resources.json")

# Wiring, not something the app addresses: it gets no env var for these.
NON_APP_RESOURCE_TYPES = frozenset({"AWS::SQS::QueuePolicy", "AWS::SNS::Subscription", "AWS::IAM::Role",
                                    "AWS::Logs::LogGroup", "AWS::Events::Rule", "AWS::Events::Archive",
                                    "AWS::Lambda::EventSourceMapping"})
# A state machine's definition lives in its own file beside the template (readable, and loadable
# in Workflow Studio); a resource names it in Metadata and load_template puts it in `Definition`.
DEFINITION_FILE = "DefinitionFile"

_LOGICAL_ID = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
# A word starts at an upper-case letter that follows a lower-case letter or digit
# ("OrdersQueue"), or at the last capital of an acronym run ("APIKey" -> "API_KEY").
_WORD_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def load_template(path: Path | str = TEMPLATE_PATH) -> dict[str, Any]:
    """Read a CloudFormation-style JSON template (by default infra/resources.json), with each
    state machine's definition file (``Metadata.DefinitionFile``, beside the template) inlined
    as its ``Definition``."""
    with open(path, encoding="utf-8") as f:
        template: dict[str, Any] = json.load(f)
    if not isinstance(template.get("Resources"), dict):
        raise ValueError(f"{path}: template has no Resources mapping")
    for logical_id, resource in template["Resources"].items():
        definition_file = resource.get("Metadata", {}).get(DEFINITION_FILE)
        if definition_file is not None:
            with open(Path(path).with_name(definition_file), encoding="utf-8") as f:
                resource["Properties"]["Definition"] = json.load(f)
    return template


def env_var_name(logical_id: str) -> str:
    """Name the env var that carries a resource's Ref: ``ProductsTable`` -> ``PRODUCTS_TABLE``.

    Raises ValueError for a string CloudFormation would not accept as a logical id.
    """
    if not _LOGICAL_ID.match(logical_id):
        raise ValueError(f"not a CloudFormation logical id: {logical_id!r}")
    return _WORD_BOUNDARY.sub("_", logical_id).upper()


def app_resources(template: dict[str, Any]) -> list[str]:
    """Logical ids of the resources the app is told about, in template order."""
    return [
        logical_id
        for logical_id, resource in template["Resources"].items()
        if resource.get("Type") not in NON_APP_RESOURCE_TYPES
    ]
