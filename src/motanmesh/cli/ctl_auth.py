"""``motanmesh ctl auth``: the access policies of services, in the registry.

The node ``/motan/<group>/<service>/auth`` holds a service's policy as JSON; every server
agent exporting the service with the ``auth`` filter follows it (docs/security.md)::

    ctl auth show   --group G --service S
    ctl auth set    --group G --service S (--file F | --allow LIST [--method M=LIST ...]
                    [--require-identity])
    ctl auth delete --group G --service S

``set`` validates the policy first; a malformed one writes nothing (exit status 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from motanmesh.filters.auth_policy import AuthPolicy, PolicyError
from motanmesh.registry.base import Registry, auth_policy_path

__all__ = ["add_auth_parsers"]


def _node(args: argparse.Namespace) -> str:
    return auth_policy_path(args.group, args.service)


def _policy_text(args: argparse.Namespace) -> str:
    from motanmesh.cli.ctl import UsageError  # noqa: PLC0415 (ctl imports this module)

    if args.file:
        if args.allow is not None or args.method or args.require_identity:
            raise UsageError("use either --file or --allow/--method/--require-identity")
        try:
            if args.file == "-":
                return sys.stdin.read()
            with open(args.file, encoding="utf-8") as f:
                return f.read()
        except OSError as e:
            raise UsageError(f"--file {args.file}: {e}") from None
    if args.allow is None and not args.method:
        raise UsageError("give the policy with --file F, or --allow LIST and/or --method M=LIST")
    doc: dict[str, Any] = {}
    if args.allow is not None:
        doc["allow"] = args.allow
    methods: dict[str, str] = {}
    for item in args.method:
        name, sep, entries = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--method {item!r}: write METHOD=LIST")
        methods[name] = entries
    if methods:
        doc["methods"] = methods
    if args.require_identity:
        doc["requireIdentity"] = True
    return json.dumps(doc)


def _show_lines(node: str, text: str | None) -> list[str]:
    if text is None:
        return [f"{node}: no policy (the services' configured auth.allow keys apply)"]
    try:
        policy = AuthPolicy.from_json(text)
    except PolicyError as e:
        return [f"{node}: MALFORMED ({e}); agents keep the policy they had: {text}"]
    info = policy.to_info()
    lines = [f"{node}:", f"  allow: {', '.join(info['allow']) if info['allow'] else '(none)'}"]
    for method, entries in info["methods"].items():
        lines.append(f"  method {method}: {', '.join(entries) or '(none)'}")
    lines.append(f"  requireIdentity: {str(policy.require_identity).lower()}")
    return lines


async def _show(args: argparse.Namespace) -> int:
    from motanmesh.cli import ctl  # noqa: PLC0415

    async def action(registry: Registry) -> int:
        text = await registry.get_auth_policy(args.group, args.service)
        node = _node(args)
        ctl._emit(args, {"node": node, "policy": text}, _show_lines(node, text))
        return ctl.EXIT_OK

    return await ctl._with_registry(args, action)


async def _set(args: argparse.Namespace) -> int:
    from motanmesh.cli import ctl  # noqa: PLC0415

    text = _policy_text(args)
    node = _node(args)
    try:
        policy = AuthPolicy.from_json(text)
    except PolicyError as e:
        return ctl._fail(args, ctl.EXIT_FAILED, f"refused, nothing written: {node}: {e}", [])
    stored = policy.to_json()

    async def action(registry: Registry) -> int:
        if args.dry_run:
            ctl._emit(args, {"node": node, "policy": stored, "written": False}, [stored])
            return ctl.EXIT_OK
        await registry.set_auth_policy(args.group, args.service, stored)
        ctl._emit(
            args,
            {"node": node, "policy": stored, "written": True},
            [*_show_lines(node, stored), "written"],
        )
        return ctl.EXIT_OK

    return await ctl._with_registry(args, action)


async def _delete(args: argparse.Namespace) -> int:
    from motanmesh.cli import ctl  # noqa: PLC0415

    async def action(registry: Registry) -> int:
        await registry.set_auth_policy(args.group, args.service, None)
        node = _node(args)
        ctl._emit(
            args,
            {"node": node, "deleted": True},
            [f"{node}: deleted (the configured policies apply again)"],
        )
        return ctl.EXIT_OK

    return await ctl._with_registry(args, action)


def add_auth_parsers(
    areas: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """``ctl auth show|set|delete``; ``common`` carries the registry options."""
    auth = areas.add_parser("auth", help="access policies of services (the auth filter)")
    auth.set_defaults(ctl_help=auth)
    sub = auth.add_subparsers(title="actions", metavar="ACTION")

    def target(p: argparse.ArgumentParser) -> None:
        p.add_argument("--group", required=True, help="the service's group")
        p.add_argument("--service", required=True, help="the service path")

    p = sub.add_parser("show", parents=[common], help="the policy stored for a service")
    target(p)
    p.set_defaults(ctl_action=_show)

    p = sub.add_parser("set", parents=[common], help="write a service's policy")
    target(p)
    p.add_argument("--file", metavar="F", help="the policy as JSON ('-' for stdin)")
    p.add_argument("--allow", metavar="LIST", help="callers of every method, comma separated")
    p.add_argument(
        "--method",
        action="append",
        default=[],
        metavar="M=LIST",
        help="callers of method M, instead of --allow (repeatable)",
    )
    p.add_argument(
        "--require-identity", action="store_true", help="refuse callers without mTLS identity"
    )
    p.add_argument("--dry-run", action="store_true", help="validate and show, write nothing")
    p.set_defaults(ctl_action=_set)

    p = sub.add_parser("delete", parents=[common], help="delete a service's policy")
    target(p)
    p.set_defaults(ctl_action=_delete)
