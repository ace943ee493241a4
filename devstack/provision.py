"""Create the resources of infra/resources.json in a running moto server, the way CloudFormation would.

Every property a supported type accepts is either applied or on a short, explicit list of
properties without local meaning (encryption, backups, tags); anything else is an error, so the
local stack never silently differs from what is deployed. Re-running against the same server
reuses what exists and returns the same values.

The resource types and how each is created: devstack/resource_types.py; what was created and
its lookups: devstack/provisioned.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from devstack.provisioned import Provisioned, ProvisionedResource, UnknownResourceError
from devstack.resource_types import IGNORED_PROPERTIES, SUPPORTED_TYPES, ResourceContext
from devstack.template import StackIdentity, TemplateError, dependency_order, evaluate
from infra.resources import app_resources

# Provisioned, its resources and its lookup error are what provision() gives its callers.
__all__ = [
    "ProvisionError",
    "Provisioned",
    "ProvisionedResource",
    "TemplateError",
    "UnknownResourceError",
    "provision",
]

# Resource-level keys that only steer CloudFormation's own lifecycle.
_IGNORED_RESOURCE_KEYS = frozenset({"DeletionPolicy", "UpdateReplacePolicy", "Metadata"})
_TEMPLATE_SECTIONS = frozenset({"AWSTemplateFormatVersion", "Description", "Metadata", "Resources", "Outputs"})


class ProvisionError(RuntimeError):
    """A resource could not be created in the local stand-in."""



def provision(
    template: Mapping[str, Any],
    *,
    endpoint_url: str,
    region: str = "us-east-1",
    stack_name: str = "storefront-dev",
    account_id: str = "123456789012",
) -> Provisioned:
    """Create every resource of ``template`` in the AWS stand-in at ``endpoint_url``, in dependency order.

    Raises TemplateError (before creating anything) for what the template asks that is not
    supported, and ProvisionError naming the resource when the stand-in refuses a call.
    """
    stack = StackIdentity(stack_name, region, account_id)
    order = _plan(template)
    ctx = ResourceContext(stack, endpoint_url)
    pseudo = stack.pseudo_parameters()
    created: dict[str, ProvisionedResource] = {}

    def ref(logical_id: str) -> str:
        return created[logical_id].ref

    def get_att(logical_id: str, attribute: str) -> str:
        return created[logical_id].attributes[attribute]

    resources = template["Resources"]
    for logical_id in order:
        type_ = resources[logical_id]["Type"]
        props = evaluate(
            resources[logical_id].get("Properties", {}), pseudo=pseudo, ref=ref, get_att=get_att, where=logical_id
        )
        try:
            result = SUPPORTED_TYPES[type_].create(ctx, logical_id, props)
        except (ClientError, BotoCoreError) as err:
            raise ProvisionError(f"{logical_id} ({type_}): {err}") from err
        created[logical_id] = ProvisionedResource(logical_id, type_, result.ref, result.attributes, props)

    return Provisioned(
        endpoint_url=endpoint_url,
        stack=stack,
        resources={i: created[i] for i in resources},
        app_ids=tuple(app_resources(dict(template))),
        _clients=ctx.clients,
    )


def _plan(template: Mapping[str, Any]) -> list[str]:
    """Check the whole template is supported and return the creation order."""
    unsupported_sections = sorted(set(template) - _TEMPLATE_SECTIONS)
    if unsupported_sections:
        raise TemplateError(f"template sections not supported locally: {', '.join(unsupported_sections)}")
    resources = template.get("Resources")
    if not isinstance(resources, dict) or not resources:
        raise TemplateError("template has no Resources")

    for logical_id, resource in resources.items():
        type_ = resource.get("Type")
        if type_ not in SUPPORTED_TYPES:
            raise TemplateError(f"{logical_id}: resource type {type_} is not supported by the local provisioner")
        extra_keys = sorted(set(resource) - {"Type", "Properties", "DependsOn"} - _IGNORED_RESOURCE_KEYS)
        if extra_keys:
            raise TemplateError(f"{logical_id}: {', '.join(extra_keys)} not supported by the local provisioner")
        spec = SUPPORTED_TYPES[type_]
        props = resource.get("Properties", {})
        unknown = sorted(set(props) - spec.properties - IGNORED_PROPERTIES.get(type_, frozenset()))
        if unknown:
            raise TemplateError(f"{logical_id}: {type_} properties not supported locally: {', '.join(unknown)}")
        missing = sorted(spec.required - set(props))
        if missing:
            raise TemplateError(f"{logical_id}: {type_} needs {', '.join(missing)}")
        if spec.validate is not None:
            spec.validate(logical_id, props)

    def check_ref(logical_id: str) -> str:
        if logical_id not in resources:
            raise LookupError(logical_id)
        return logical_id

    def check_get_att(logical_id: str, attribute: str) -> str:
        if attribute not in SUPPORTED_TYPES[resources[check_ref(logical_id)]["Type"]].attributes:
            raise LookupError(attribute)
        return attribute

    pseudo = StackIdentity("stack", "us-east-1", "000000000000").pseudo_parameters()
    for logical_id, resource in resources.items():
        evaluate(resource.get("Properties", {}), pseudo=pseudo, ref=check_ref, get_att=check_get_att, where=logical_id)
    return dependency_order(resources)
