"""Reading a CloudFormation template without AWS: intrinsics, references, creation order, names.

Only the intrinsics infra/resources.json needs are understood; anything else is a
TemplateError naming the resource, so a template change that the local stack cannot honour
fails loudly instead of being half-provisioned.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "StackIdentity",
    "TemplateError",
    "dependency_order",
    "evaluate",
    "physical_name",
    "references",
]

_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class TemplateError(ValueError):
    """The template asks for something the local provisioner does not support or cannot order."""


@dataclass(frozen=True)
class StackIdentity:
    """What the pseudo parameters resolve to."""

    name: str
    region: str
    account_id: str

    @property
    def partition(self) -> str:
        if self.region.startswith("cn-"):
            return "aws-cn"
        if self.region.startswith("us-gov-"):
            return "aws-us-gov"
        return "aws"

    def pseudo_parameters(self) -> dict[str, str]:
        return {
            "AWS::StackName": self.name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com",
        }


RefResolver = Callable[[str], str]
GetAttResolver = Callable[[str, str], str]


def evaluate(
    value: Any,
    *,
    pseudo: Mapping[str, str],
    ref: RefResolver,
    get_att: GetAttResolver,
    where: str,
) -> Any:
    """Replace the intrinsics in ``value`` (Ref, Fn::GetAtt, Fn::Sub, Fn::Join) by their values.

    ``ref(logical_id)`` and ``get_att(logical_id, attribute)`` resolve resources and raise
    LookupError for what they do not know. ``where`` names the resource for error messages.
    Raises TemplateError.
    """
    return _Evaluator(pseudo, ref, get_att, where).eval(value)


def references(value: Any, *, where: str) -> set[str]:
    """Logical ids that ``value`` refers to through Ref, Fn::GetAtt and Fn::Sub.

    Also checks the intrinsics are ones ``evaluate`` supports. Raises TemplateError.
    """
    seen: set[str] = set()

    def ref(logical_id: str) -> str:
        seen.add(logical_id)
        return logical_id

    def get_att(logical_id: str, attribute: str) -> str:
        seen.add(logical_id)
        return f"{logical_id}.{attribute}"

    # Pseudo parameter values do not matter here, only whether they are supported.
    pseudo = StackIdentity("stack", "us-east-1", "000000000000").pseudo_parameters()
    _Evaluator(pseudo, ref, get_att, where).eval(value)
    return seen


def dependency_order(resources: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Logical ids in an order where each comes after everything it refers to or DependsOn.

    Ties keep template order, so the result is deterministic. Raises TemplateError for a
    reference to an unknown id or for a cycle (naming the ids on it).
    """
    deps: dict[str, set[str]] = {}
    for logical_id, resource in resources.items():
        wanted = references(resource.get("Properties", {}), where=logical_id)
        depends_on = resource.get("DependsOn", [])
        if isinstance(depends_on, str):
            depends_on = [depends_on]
        if not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on):
            raise TemplateError(f"{logical_id}: DependsOn must be a logical id or a list of them")
        wanted.update(depends_on)
        unknown = sorted(wanted - resources.keys())
        if unknown:
            raise TemplateError(f"{logical_id}: refers to unknown resource(s) {', '.join(unknown)}")
        if logical_id in wanted:
            raise TemplateError(f"{logical_id}: refers to itself")
        deps[logical_id] = wanted

    order: list[str] = []
    placed: set[str] = set()
    pending = list(resources)
    while pending:
        ready = [i for i in pending if deps[i] <= placed]
        if not ready:
            raise TemplateError(f"dependency cycle: {' -> '.join(_find_cycle(pending, deps))}")
        for logical_id in ready:
            order.append(logical_id)
            placed.add(logical_id)
        pending = [i for i in pending if i not in placed]
    return order


def physical_name(
    stack_name: str, logical_id: str, *, max_length: int, lowercase: bool = False, suffix: str = ""
) -> str:
    """A readable, deterministic name for a resource the template does not name.

    ``storefront-dev-OrdersQueue``; too long a name is cut and ends in a short hash of the full
    one, so two long ids never collide.
    """
    name = f"{stack_name}-{logical_id}"
    if lowercase:
        name = name.lower()
    room = max_length - len(suffix)
    if len(name) > room:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[: room - len(digest) - 1]}-{digest}"
    return name + suffix


def _find_cycle(pending: list[str], deps: Mapping[str, set[str]]) -> list[str]:
    # Every pending id waits on another pending id, so walking those edges must revisit one.
    path: list[str] = []
    node = pending[0]
    while node not in path:
        path.append(node)
        node = next(d for d in pending if d in deps[node])
    return path[path.index(node) :] + [node]


class _Evaluator:
    def __init__(
        self, pseudo: Mapping[str, str], ref: RefResolver, get_att: GetAttResolver, where: str
    ) -> None:
        self._pseudo = pseudo
        self._ref = ref
        self._get_att = get_att
        self._where = where

    def eval(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.eval(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self._eval_ref(arg)
            if key == "Fn::GetAtt":
                return self._eval_get_att(arg)
            if key == "Fn::Sub":
                return self._eval_sub(arg)
            if key == "Fn::Join":
                return self._eval_join(arg)
            if key.startswith("Fn::") or key == "Condition":
                raise self._error(f"intrinsic {key} is not supported by the local provisioner")
        return {k: self.eval(v) for k, v in value.items()}

    def _error(self, message: str) -> TemplateError:
        return TemplateError(f"{self._where}: {message}")

    def _name(self, name: str) -> str:
        if name.startswith("AWS::"):
            if name not in self._pseudo:
                raise self._error(f"pseudo parameter {name} is not supported by the local provisioner")
            return self._pseudo[name]
        try:
            return self._ref(name)
        except LookupError:
            raise self._error(f"Ref to unknown resource {name}") from None

    def _eval_ref(self, arg: Any) -> str:
        if not isinstance(arg, str):
            raise self._error(f"Ref takes a name, got {arg!r}")
        return self._name(arg)

    def _attribute(self, logical_id: str, attribute: str) -> str:
        try:
            return self._get_att(logical_id, attribute)
        except LookupError:
            raise self._error(f"Fn::GetAtt {logical_id}.{attribute} is not available") from None

    def _eval_get_att(self, arg: Any) -> str:
        if isinstance(arg, str) and "." in arg:
            arg = arg.split(".", 1)
        if not (isinstance(arg, list) and len(arg) == 2 and all(isinstance(a, str) for a in arg)):
            raise self._error(f"Fn::GetAtt takes [logical_id, attribute], got {arg!r}")
        return self._attribute(arg[0], arg[1])

    def _eval_sub(self, arg: Any) -> str:
        variables: dict[str, str] = {}
        if isinstance(arg, list):
            if len(arg) != 2 or not isinstance(arg[0], str) or not isinstance(arg[1], dict):
                raise self._error("Fn::Sub takes a string or [string, {variables}]")
            text = arg[0]
            for name, raw in arg[1].items():
                variables[name] = self._scalar(self.eval(raw), f"Fn::Sub variable {name}")
        elif isinstance(arg, str):
            text = arg
        else:
            raise self._error(f"Fn::Sub takes a string or [string, {{variables}}], got {arg!r}")

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return variables[name]
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return self._attribute(logical_id, attribute)
            return self._name(name)

        return _SUB_VARIABLE.sub(substitute, text)

    def _eval_join(self, arg: Any) -> str:
        if not (isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str)):
            raise self._error("Fn::Join takes [delimiter, [values]]")
        parts = self.eval(arg[1])
        if not isinstance(parts, list):
            raise self._error("Fn::Join takes a list of values")
        return arg[0].join(self._scalar(p, "Fn::Join value") for p in parts)

    def _scalar(self, value: Any, what: str) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (str, int, float)):
            return str(value)
        raise self._error(f"{what} must be a string, got {value!r}")
