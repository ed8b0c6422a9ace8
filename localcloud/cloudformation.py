"""CloudFormation as AWS runs a stack: a resource its service refuses fails the stack, which rolls back.

moto creates a stack's resources inside the CreateStack request. A resource its service refuses (a Lambda
reservation the account cannot give) escaped as that service's own error in CreateStack's answer, in a
protocol the caller cannot parse, and left the stack CREATE_IN_PROGRESS. On AWS, CreateStack succeeds and
the stack fails after: the resource's CREATE_FAILED event carries the service's message, and the stack
ends ROLLBACK_COMPLETE. Here it ends so too. What was created before the failure stays in moto, unused
(the local cloud resets moto when it stops); AWS would delete it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from localcloud.patching import Patches

_patches = Patches()


class ResourceFailed(Exception):
    """A resource of a stack that its service refused to create."""

    def __init__(self, logical_id: str, resource_type: str, code: str, message: str) -> None:
        super().__init__(f"{logical_id}: {code}: {message}")
        self.logical_id = logical_id
        self.resource_type = resource_type
        service = resource_type.split("::")[1] if resource_type.count("::") == 2 else resource_type
        # CloudFormation's wording, with the service's error code, which its Request ID would stand beside.
        self.reason = f'Resource handler returned message: "{message}" (Service: {service}, Error Code: {code})'


def _service_error(exc: Exception) -> tuple[str, str] | None:
    """The code and message of an error a moto service raised, None for anything else."""
    from moto.core.exceptions import ServiceException
    from werkzeug.exceptions import HTTPException

    if isinstance(exc, ServiceException):
        return str(exc.code), exc.message
    if isinstance(exc, HTTPException) and hasattr(exc, "error_type"):
        return str(exc.error_type), str(getattr(exc, "message", exc))
    return None


def _named_failures(original: Callable[..., Any]) -> Callable[..., Any]:
    def parse_and_create_resource(
        logical_id: str, resource_json: dict[str, Any], resources_map: Any, account_id: str, region_name: str
    ) -> Any:
        try:
            return original(logical_id, resource_json, resources_map, account_id, region_name)
        except Exception as exc:
            refused = _service_error(exc)
            if refused is None:
                raise
            raise ResourceFailed(logical_id, resource_json["Type"], *refused) from exc

    return parse_and_create_resource


def _rolled_back(original: Callable[..., Any]) -> Callable[..., Any]:
    def create_resources(self: Any) -> None:
        from moto.cloudformation.models import Event

        try:
            original(self)
        except ResourceFailed as failed:
            self.events.append(
                Event(
                    stack_id=self.stack_id, stack_name=self.name, logical_resource_id=failed.logical_id,
                    physical_resource_id="", resource_type=failed.resource_type, resource_status="CREATE_FAILED",
                    resource_status_reason=failed.reason, resource_properties=None,
                )
            )  # fmt: skip
            reason = f"The following resource(s) failed to create: [{failed.logical_id}]. Rollback requested by user."
            self._add_stack_event("ROLLBACK_IN_PROGRESS", resource_status_reason=reason)
            self._add_stack_event("ROLLBACK_COMPLETE")
            self.status = "ROLLBACK_COMPLETE"

    return create_resources


def install() -> None:
    """Fail and roll back a stack whose resource its service refuses (idempotent)."""
    from moto.cloudformation import parsing
    from moto.cloudformation.models import Stack

    with _patches.lock:
        # ResourceMap looks the function up on its module at call time.
        _patches.patch(parsing, "parse_and_create_resource", _named_failures)
        _patches.patch(Stack, "create_resources", _rolled_back)


def uninstall() -> None:
    """Restore what install() replaced."""
    with _patches.lock:
        _patches.undo()
