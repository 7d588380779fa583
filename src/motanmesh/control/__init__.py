"""The control plane: command authoring (validate, write, audit), previews of what a client
would get, and the agents' management API as seen by operators (``motanmesh ctl``).

The data plane never imports this package.
"""

from motanmesh.control.audit import AuditError, AuditRecord, AuditTrail, CommandTarget
from motanmesh.control.commands import (
    AuditWriteError,
    CommandAuthor,
    CommandValidationError,
    ConcurrentChangeError,
    Plan,
    StoredCommand,
    WriteResult,
    build_command,
    plan_clear,
    plan_command,
    plan_document,
    plan_remove,
    read_command,
)
from motanmesh.control.preview import Preview, preview, traffic_shares

__all__ = [
    "AuditError",
    "AuditRecord",
    "AuditTrail",
    "AuditWriteError",
    "CommandAuthor",
    "CommandTarget",
    "CommandValidationError",
    "ConcurrentChangeError",
    "Plan",
    "Preview",
    "StoredCommand",
    "WriteResult",
    "build_command",
    "plan_clear",
    "plan_command",
    "plan_document",
    "plan_remove",
    "preview",
    "read_command",
    "traffic_shares",
]
