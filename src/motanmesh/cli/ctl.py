"""``motanmesh ctl``: the operators' control plane -- commands, switchers, agent status.

Commands live in the registry (``--registry URL``, or ``-c agent.yaml [--registry-id ID]``)::

    ctl commands list    [--group G | --agent APP]
    ctl commands show    --group G | --agent APP
    ctl commands set     --group G | --agent APP  (--file F | --type T --pattern P ...)
    ctl commands clear   --group G | --agent APP  [--index N | --delete]
    ctl commands preview --service S --group G --client-ip IP [--agent APP] [--file F]
    ctl commands history [--group G | --agent APP] [--limit N]

Every write is validated first (nothing is written when a problem is found) and leaves an
audit record in the registry, shown by ``history``. Switchers and status go to the agents'
management API (``--agent HOST:MPORT``)::

    ctl switchers list --agent HOST:MPORT
    ctl switchers set  --agent HOST:MPORT --name N --value true|false
    ctl status         --agent HOST:MPORT [--registry URL | -c agent.yaml]

Access policies of services (the ``auth`` filter; ``motanmesh.cli.ctl_auth``)::

    ctl auth show|set|delete --group G --service S [--allow LIST --method M=LIST ...]

The dependency graph is gathered from the agents registered in the registry (their agent
nodes) and/or the agents named with ``--agent``::

    ctl graph [--registry URL | -c agent.yaml] [--application APP] [--agent HOST:MPORT ...]
              [--format table|json|dot]

Output is for people; ``--json`` prints JSON for scripts. Exit status: 0 done; 1 refused
(validation) or failed remotely (the agent or the audit trail answered with an error);
2 usage errors and unreachable registries or agents.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

from motanmesh.cluster.command import (
    CommandDocument,
    CommandError,
    parse_command_document,
    validate,
)
from motanmesh.config.errors import ConfigError
from motanmesh.control.agents import (
    AgentUnreachableError,
    ConfigRegistries,
    ManagementClient,
    ManagementError,
    attach_commands,
    collect_status,
    parse_bool,
    registries_from_config,
    registries_from_text,
)
from motanmesh.control.audit import AuditError, AuditTrail, CommandTarget
from motanmesh.control.commands import (
    AuditWriteError,
    CommandAuthor,
    CommandValidationError,
    ConcurrentChangeError,
    Plan,
    StoredCommand,
    build_command,
    command_targets,
    plan_clear,
    plan_command,
    plan_document,
    plan_remove,
    provider_warnings,
    read_command,
    record_lines,
    summarize,
)
from motanmesh.control.graph import agent_addresses, dot, gather, table_lines
from motanmesh.control.preview import preview
from motanmesh.registry.base import Registry, RegistryError
from motanmesh.registry.embedded import registry_file
from motanmesh.registry.factory import create_registry
from motanmesh.url import URL

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "UsageError", "add_parser", "main", "run"]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
TOKEN_ENV: Final = "MOTANMESH_ADMIN_TOKEN"

Action = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


class UsageError(Exception):
    """Wrong or missing options (exit status 2)."""


# ---------------------------------------------------------------------------- output


def _emit(args: argparse.Namespace, data: Any, lines: list[str]) -> None:
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        for line in lines:
            print(line)


def _warn(messages: list[str]) -> None:
    for message in messages:
        print(f"warning: {message}", file=sys.stderr)


def _document_json(document: CommandDocument | None) -> Any:
    return None if document is None else json.loads(document.to_json())


# ---------------------------------------------------------------------------- registry


def _target(args: argparse.Namespace, required: bool) -> CommandTarget | None:
    group, agent = getattr(args, "group", None), getattr(args, "agent", None)
    try:
        if group:
            return CommandTarget("group", group)
        if agent:
            return CommandTarget("agent", agent)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if required:
        raise UsageError("name the command node with --group G or --agent APP")
    return None


def _config(args: argparse.Namespace) -> ConfigRegistries | None:
    if not args.config:
        return None
    try:
        return registries_from_config(args.config)
    except ConfigError as exc:
        raise UsageError(f"agent config {args.config}: {exc}") from None


def _registry_url(args: argparse.Namespace, config: ConfigRegistries | None) -> URL:
    if args.registry and args.config:
        raise UsageError("use either --registry or -c, not both")
    if args.registry:
        try:
            url = URL.parse(args.registry)
        except ValueError as exc:
            raise UsageError(f"--registry {args.registry!r}: {exc}") from None
    elif config is not None:
        try:
            url = config.pick(args.registry_id)
        except ValueError as exc:
            raise UsageError(f"agent config {args.config}: {exc}") from None
    else:
        raise UsageError("name the registry with --registry URL or -c agent.yaml")
    _check_usable(url)
    return url


def _check_usable(url: URL) -> None:
    if url.protocol == "embedded" and not os.path.exists(registry_file(url)):
        raise UsageError(f"embedded registry file {registry_file(url)} does not exist")
    if url.protocol in ("direct", "local", "mesh"):
        raise UsageError(f"a {url.protocol} registry keeps no commands")


async def _open(url: URL) -> Registry:
    registry = create_registry(url)
    await registry.start()
    return registry


async def _with_registry(
    args: argparse.Namespace, action: Callable[[Registry], Awaitable[int]]
) -> int:
    registry = await _open(_registry_url(args, _config(args)))
    try:
        return await action(registry)
    finally:
        await registry.close()


def _operator(args: argparse.Namespace) -> str:
    if args.operator:
        return str(args.operator)
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


# ---------------------------------------------------------------------------- commands


async def _list(args: argparse.Namespace) -> int:
    async def action(registry: Registry) -> int:
        target = _target(args, required=False)
        source = "given"
        if target is not None:
            targets = [target]
        else:
            targets, source = await command_targets(registry, AuditTrail(registry))
            if not targets:
                raise UsageError(
                    "this registry cannot list its command nodes and ctl has written none: "
                    "pass --group G or --agent APP"
                )
            if source == "audit" and not args.json:
                print("(command nodes written through ctl; pass --group for others)")
        stored = [await read_command(registry, t) for t in targets]
        data = {
            "source": source,
            "targets": [
                {
                    "target": s.target.key,
                    "exists": s.exists,
                    "document": _document_json(s.document),
                    "error": s.error,
                }
                for s in stored
            ],
        }
        _emit(args, data, [line for s in stored for line in s.lines()])
        return EXIT_OK

    return await _with_registry(args, action)


async def _show(args: argparse.Namespace) -> int:
    async def action(registry: Registry) -> int:
        target = _target(args, required=True)
        assert target is not None
        stored = await read_command(registry, target)
        problems = [] if stored.document is None else _problems(args, stored.document)
        data = {
            "target": target.key,
            "exists": stored.exists,
            "raw": stored.raw,
            "document": _document_json(stored.document),
            "error": stored.error,
            "problems": problems,
        }
        lines = stored.lines()
        if stored.document is not None:
            lines.append(f"  raw: {stored.raw}")
        lines.extend(f"  problem: {p}" for p in problems)
        _emit(args, data, lines)
        return EXIT_OK

    return await _with_registry(args, action)


def _problems(args: argparse.Namespace, document: CommandDocument) -> list[str]:
    return validate(document, args.pattern_mode)


def _read_file(name: str) -> str:
    try:
        if name == "-":
            return sys.stdin.read()
        with open(name, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {name}: {exc}") from None


def _parse_file(name: str) -> CommandDocument:
    try:
        return parse_command_document(_read_file(name))
    except CommandError as exc:
        raise CommandValidationError([f"{'stdin' if name == '-' else name}: {exc}"]) from None


def _plan_set(args: argparse.Namespace, before: StoredCommand) -> tuple[Plan, str]:
    flags = (args.type, args.pattern, args.merge_groups, args.route, args.remark, args.index)
    if args.file is not None:
        if any(f not in (None, []) for f in flags):
            raise UsageError("--file replaces the whole document; do not combine it with flags")
        return plan_document(before, _parse_file(args.file), args.pattern_mode), args.reason
    if args.type is None or args.pattern is None:
        raise UsageError("give --file F, or --type and --pattern for one command")
    command = build_command(
        args.type,
        args.pattern,
        merge_groups=args.merge_groups,
        route_rules=args.route,
        remark=args.remark or "",
        index=args.index,
        dc=args.dc,
    )
    return plan_command(before, command, args.pattern_mode), args.reason or args.remark or ""


async def _write(
    args: argparse.Namespace,
    registry: Registry,
    make: Callable[[StoredCommand], tuple[Plan, str]],
) -> int:
    target = _target(args, required=True)
    assert target is not None
    author = CommandAuthor(registry, _operator(args))
    plan, remark = make(await author.read(target))
    warnings = list(plan.warnings)
    document = plan.document
    if document is not None and getattr(args, "service", None):
        warnings += await provider_warnings(registry, document, args.service, args.pattern_mode)
    _warn(warnings)
    data: dict[str, Any] = {
        "target": target.key,
        "action": plan.action,
        "changed": plan.changed,
        "before": plan.before.raw,
        "after": plan.after,
        "warnings": warnings,
        "written": False,
    }
    if args.dry_run or not plan.changed:
        verb = "would write" if plan.changed else "unchanged, nothing written:"
        _emit(args, data, [f"{target}: {verb} {plan.after}"])
        return EXIT_OK
    result = await author.commit(plan, remark)
    data["written"] = True
    data["record"] = None if result.record is None else result.record.to_dict()
    if result.concurrent:
        _warn([f"{target} was changed again right after this write; check it with show"])
    lines = [f"{target}: {plan.action} done"]
    lines += [f"  {line}" for line in summarize(plan.after)]
    _emit(args, data, lines)
    return EXIT_OK


async def _set(args: argparse.Namespace) -> int:
    async def action(registry: Registry) -> int:
        return await _write(args, registry, lambda before: _plan_set(args, before))

    return await _with_registry(args, action)


async def _clear(args: argparse.Namespace) -> int:
    if args.index is not None and args.delete:
        raise UsageError("--index removes one command; --delete removes the node: pick one")

    def make(before: StoredCommand) -> tuple[Plan, str]:
        if args.index is not None:
            return plan_remove(before, args.index, args.pattern_mode), args.reason
        return plan_clear(before, delete=args.delete), args.reason

    async def action(registry: Registry) -> int:
        return await _write(args, registry, make)

    return await _with_registry(args, action)


async def _preview(args: argparse.Namespace) -> int:
    proposed: CommandDocument | None = None
    if args.file is not None:
        proposed = _parse_file(args.file)
        problems = _problems(args, proposed)
        if problems:
            raise CommandValidationError(problems)

    async def action(registry: Registry) -> int:
        result = await preview(
            registry,
            args.service,
            args.group,
            args.client_ip,
            application=args.agent or "",
            service_command=proposed,
            mix_groups=[g.strip() for i in args.mix_groups for g in i.split(",") if g.strip()],
            pattern_mode=args.pattern_mode,
        )
        _emit(args, result.to_dict(), result.lines())
        return EXIT_OK

    return await _with_registry(args, action)


async def _history(args: argparse.Namespace) -> int:
    async def action(registry: Registry) -> int:
        target = _target(args, required=False)
        records = await AuditTrail(registry).history(target, args.limit)
        lines = [line for r in records for line in record_lines(r)] or ["no audit records"]
        _emit(args, [r.to_dict() for r in records], lines)
        return EXIT_OK

    return await _with_registry(args, action)


# ---------------------------------------------------------------------------- agents


def _token(args: argparse.Namespace) -> str:
    return str(args.token or os.environ.get(TOKEN_ENV, ""))


async def _switchers_list(args: argparse.Namespace) -> int:
    data: dict[str, dict[str, bool]] = {}
    lines: list[str] = []
    for address in args.agents:
        async with ManagementClient(address, token=_token(args), timeout=args.timeout) as client:
            values = await client.switchers()
        data[address] = values
        lines.append(f"agent {address}: {len(values)} switcher(s)")
        lines += [f"  {n} = {'true' if v else 'false'}" for n, v in sorted(values.items())]
    _emit(args, data, lines)
    return EXIT_OK


async def _switchers_set(args: argparse.Namespace) -> int:
    try:
        value = parse_bool(args.value)
    except ValueError as exc:
        raise UsageError(f"--value: {exc}") from None
    data: dict[str, str] = {}
    failed = False
    for address in args.agents:
        async with ManagementClient(address, token=_token(args), timeout=args.timeout) as client:
            try:
                data[address] = await client.set_switcher(args.name, value)
            except ManagementError as exc:
                data[address] = f"error: {exc}"
                failed = True
    _emit(args, data, [f"agent {a}: {text}" for a, text in data.items()])
    return EXIT_FAILED if failed else EXIT_OK


async def _status(args: argparse.Namespace) -> int:
    given = bool(args.registry or args.config)
    config = _config(args)
    fixed = _registry_url(args, config) if given else None
    opened: dict[str, Registry | str] = {}
    reports = []
    try:
        for address in args.agents:
            async with ManagementClient(
                address, token=_token(args), timeout=args.timeout
            ) as client:
                status = await collect_status(client)
                source = config if given else await _agent_config(client)
            application = args.application or (source.application if source else "")
            agent_url = fixed or (source.agent_registry_url if source else None)
            agent_registry = None
            if agent_url is not None:
                found = await _cached_registry(opened, agent_url)
                agent_registry = found if not isinstance(found, str) else None
            for refer in status.refers:
                url = fixed or (source.for_refer(refer.refer) if source else None)
                if url is None:
                    refer.note = "the refer uses no registry that keeps commands"
                    continue
                registry = await _cached_registry(opened, url)
                if isinstance(registry, str):
                    refer.note = registry
                    continue
                await attach_commands(
                    refer,
                    registry,
                    agent_registry=agent_registry,
                    application=application,
                    pattern_mode=args.pattern_mode,
                )
            reports.append(status)
    finally:
        for registry in opened.values():
            if not isinstance(registry, str):
                await registry.close()
    data = [s.to_dict() for s in reports]
    _emit(args, data[0] if len(data) == 1 else data, [x for s in reports for x in s.lines()])
    return EXIT_OK


async def _graph(args: argparse.Namespace) -> int:
    addresses = list(args.agents)
    if args.registry or args.config:

        async def action(registry: Registry) -> int:
            addresses.extend(await agent_addresses(registry, args.application))
            return EXIT_OK

        await _with_registry(args, action)
    elif not addresses:
        raise UsageError("name the agents with --registry URL, -c agent.yaml or --agent")
    addresses = list(dict.fromkeys(addresses))
    if not addresses:
        raise UsageError("the registry holds no agent nodes" + _of(args.application))
    report = await gather(addresses, token=_token(args), timeout=args.timeout)
    fmt = "json" if args.json else args.format
    if fmt == "json":
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    elif fmt == "dot":
        sys.stdout.write(dot(report))
    else:
        for line in table_lines(report):
            print(line)
    return EXIT_OK if any(v == "ok" for v in report.agents.values()) else EXIT_FAILED


def _of(application: str) -> str:
    return f" of {application}" if application else ""


async def _agent_config(client: ManagementClient) -> ConfigRegistries | None:
    try:
        return registries_from_text(await client.text("/getConfig"))
    except (ManagementError, ConfigError):
        return None


async def _cached_registry(opened: dict[str, Registry | str], url: URL) -> Registry | str:
    key = url.to_ext_info()
    if key not in opened:
        try:
            _check_usable(url)
            opened[key] = await _open(url)
        except (UsageError, RegistryError) as exc:
            opened[key] = f"registry {url.protocol}: {exc}"
    return opened[key]


# ---------------------------------------------------------------------------- parsers


def _common(registry: bool) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", help="print JSON for scripts")
    if registry:
        parent.add_argument(
            "--registry",
            metavar="URL",
            help="embedded:///path/registry.db, zookeeper://host:2181, etcd://host:2379",
        )
        parent.add_argument(
            "-c", "--config", metavar="AGENT_YAML", help="take the registry from an agent config"
        )
        parent.add_argument(
            "--registry-id", default="", metavar="ID", help="registry id in the -c config"
        )
        parent.add_argument(
            "--pattern-mode",
            choices=("auto", "go", "java"),
            default="auto",
            help="how service patterns are read (default auto)",
        )
    return parent


def _target_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--group", help="a service group's command (/motan/<G>/command)")
    group.add_argument("--agent", help="an agent application's command (/motan/agent/<APP>/...)")


def _write_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--operator", help="who makes the change (default $USER)")
    parser.add_argument(
        "--reason", default="", help="remark of the audit record (default: --remark)"
    )
    parser.add_argument("--dry-run", action="store_true", help="validate and show, write nothing")


def _agent_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--agent",
        dest="agents",
        action="append",
        required=True,
        metavar="HOST:MPORT",
        help="agent management address (repeatable; unix:///path for a socket)",
    )
    parser.add_argument("--token", default="", help=f"management token (default ${TOKEN_ENV})")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")


def _commands_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parents = [_common(registry=True)]
    p = sub.add_parser("list", parents=parents, help="list command nodes and their commands")
    _target_options(p)
    p.set_defaults(ctl_action=_list)

    p = sub.add_parser("show", parents=parents, help="show one command node")
    _target_options(p)
    p.set_defaults(ctl_action=_show)

    p = sub.add_parser("set", parents=parents, help="write a document or one command")
    _target_options(p)
    p.add_argument("--file", metavar="F", help="the whole document as JSON ('-' for stdin)")
    p.add_argument("--type", choices=("traffic", "degrade", "switcher"), help="command type")
    p.add_argument("--pattern", help="services (or 'name:true,...' for switchers)")
    p.add_argument(
        "--merge-groups",
        action="append",
        default=[],
        metavar="A:8,B:2",
        help="groups to serve from, 'group' or 'group:weight', comma separated",
    )
    p.add_argument(
        "--route",
        action="append",
        default=[],
        metavar="'10.* to 10.*'",
        help="route rule '<client ip> to <provider ip>' (repeatable)",
    )
    p.add_argument("--remark", help="the command's remark")
    p.add_argument("--index", type=int, help="replace the command with this index (else append)")
    p.add_argument("--dc", default="", help="informational dc field")
    p.add_argument(
        "--service",
        action="append",
        default=[],
        metavar="S",
        help="warn when a merge group has no providers of S (repeatable)",
    )
    _write_options(p)
    p.set_defaults(ctl_action=_set)

    p = sub.add_parser("clear", parents=parents, help="write an empty list, or delete")
    _target_options(p)
    p.add_argument("--index", type=int, help="remove only the command with this index")
    p.add_argument("--delete", action="store_true", help="delete the node instead")
    _write_options(p)
    p.set_defaults(ctl_action=_clear)

    p = sub.add_parser("preview", parents=parents, help="what a client would get")
    p.add_argument("--service", required=True, help="the refer's service path")
    p.add_argument("--group", required=True, help="the refer's group")
    p.add_argument("--client-ip", required=True, help="the client's local IP")
    p.add_argument("--agent", help="include this application's agent command")
    p.add_argument("--file", metavar="F", help="preview this document instead of the stored one")
    p.add_argument("--mix-groups", action="append", default=[], help="the refer's mixGroups")
    p.set_defaults(ctl_action=_preview)

    p = sub.add_parser("history", parents=parents, help="the audit trail")
    _target_options(p)
    p.add_argument("--limit", type=int, default=50, help="newest N records (default 50)")
    p.set_defaults(ctl_action=_history)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="log registry activity")
    areas = parser.add_subparsers(title="areas", metavar="AREA")
    commands = areas.add_parser("commands", help="traffic, degrade and switcher commands")
    _commands_parsers(commands.add_subparsers(title="actions", metavar="ACTION"))
    commands.set_defaults(ctl_help=commands)

    switchers = areas.add_parser("switchers", help="agents' switchers")
    switchers.set_defaults(ctl_help=switchers)
    sw = switchers.add_subparsers(title="actions", metavar="ACTION")
    p = sw.add_parser("list", parents=[_common(registry=False)], help="all switchers")
    _agent_options(p)
    p.set_defaults(ctl_action=_switchers_list)
    p = sw.add_parser("set", parents=[_common(registry=False)], help="set one switcher")
    _agent_options(p)
    p.add_argument("--name", required=True)
    p.add_argument("--value", required=True, help="true or false")
    p.set_defaults(ctl_action=_switchers_set)

    from motanmesh.cli.ctl_auth import add_auth_parsers  # noqa: PLC0415

    add_auth_parsers(areas, _common(registry=True))

    p = areas.add_parser(
        "status", parents=[_common(registry=True)], help="an agent's refers, providers, commands"
    )
    _agent_options(p)
    p.add_argument(
        "--application",
        default="",
        help="application whose agent command to read (default: from the agent config); "
        "without --registry/-c the agent's own config (/getConfig) names its registries",
    )
    p.set_defaults(ctl_action=_status)

    p = areas.add_parser(
        "graph",
        parents=[_common(registry=True)],
        help="who calls what: the dependency graph of the registered agents",
    )
    p.add_argument(
        "--agent",
        dest="agents",
        action="append",
        default=[],
        metavar="HOST:MPORT",
        help="also ask this agent (repeatable; alone, without a registry)",
    )
    p.add_argument("--application", default="", help="only the agents of this application")
    p.add_argument("--format", choices=("table", "json", "dot"), default="table")
    p.add_argument("--token", default="", help=f"management token (default ${TOKEN_ENV})")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per agent (default 5)")
    p.set_defaults(ctl_action=_graph)
    parser.set_defaults(ctl_help=parser)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``ctl`` on the ``motanmesh`` command line."""
    parser = subparsers.add_parser(
        "ctl",
        help="control plane: commands, switchers, agent status, dependency graph",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the chosen ``ctl`` action; return the exit status."""
    action: Action | None = getattr(args, "ctl_action", None)
    if action is None:
        args.ctl_help.print_help(sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.CRITICAL,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return asyncio.run(action(args))
    except CommandValidationError as exc:
        return _fail(args, EXIT_FAILED, "refused, nothing written", exc.problems)
    except (ConcurrentChangeError, AuditError, AuditWriteError, ManagementError) as exc:
        return _fail(args, EXIT_FAILED, str(exc), [])
    except (UsageError, RegistryError, AgentUnreachableError) as exc:
        return _fail(args, EXIT_USAGE, str(exc), [])


def _fail(args: argparse.Namespace, code: int, message: str, problems: list[str]) -> int:
    print(f"motanmesh ctl: {message}", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps({"error": message, "problems": problems}, ensure_ascii=False))
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="motanmesh ctl",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
