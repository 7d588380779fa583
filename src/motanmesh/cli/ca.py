"""``motanmesh ca``: a development CA for mutual TLS between agents.

``motanmesh ca init --dir D [--trust-domain T]`` creates ``D/ca.pem`` and ``D/ca-key.pem``;
``motanmesh ca issue --app NAME --dir D [--days N]`` writes ``D/NAME.pem`` and
``D/NAME-key.pem``, a certificate for ``spiffe://T/app/NAME`` (also valid for localhost,
127.0.0.1 and ::1). Point ``motan-agent`` ``tls.cert``, ``tls.key`` and ``tls.ca`` at them
(docs/security.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_parser", "main"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``ca`` on the ``motanmesh`` command line."""
    parser = subparsers.add_parser(
        "ca",
        help="a development CA: issue agent certificates for mutual TLS",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", dest="action")
    init = actions.add_parser("init", help="create a CA (ca.pem, ca-key.pem) in --dir")
    init.add_argument("--dir", required=True, type=Path, help="the CA directory")
    init.add_argument(
        "--trust-domain",
        default="motanmesh.local",
        help="SPIFFE trust domain of the mesh (motanmesh.local)",
    )
    init.add_argument("--days", type=int, default=3650, help="validity in days (3650)")
    init.add_argument("--force", action="store_true", help="replace an existing CA")
    issue = actions.add_parser("issue", help="issue an agent certificate and key")
    issue.add_argument("--dir", required=True, type=Path, help="the CA directory")
    issue.add_argument("--app", required=True, help="the agent's application (motan-agent)")
    issue.add_argument("--days", type=int, default=90, help="validity in days (90)")
    issue.add_argument("--trust-domain", default=None, help="override the CA's trust domain")
    issue.add_argument(
        "--host",
        action="append",
        default=None,
        metavar="NAME_OR_IP",
        help="a DNS name or IP address the certificate is also for (repeatable; default "
        "localhost, 127.0.0.1, ::1)",
    )
    issue.add_argument("--out", type=Path, default=None, help="write there instead of --dir")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    # imported here: only this command needs the cryptography library
    from motanmesh.security.ca import DEFAULT_HOSTS, CaError, init_ca, issue  # noqa: PLC0415
    from motanmesh.security.identity import IdentityError  # noqa: PLC0415

    try:
        if args.action == "init":
            path = init_ca(args.dir, args.trust_domain, days=args.days, force=args.force)
            print(f"CA written: {path} (trust domain {args.trust_domain})")
            return 0
        if args.action == "issue":
            hosts = tuple(args.host) if args.host else DEFAULT_HOSTS
            done = issue(
                args.dir,
                args.app,
                days=args.days,
                trust_domain=args.trust_domain,
                hosts=hosts,
                out_dir=args.out,
            )
            print(
                f"certificate {done.cert}, key {done.key}: {done.uri}, "
                f"valid until {done.not_after:%Y-%m-%d %H:%M} UTC"
            )
            return 0
    except (CaError, IdentityError) as e:
        print(f"motanmesh ca: {e}", file=sys.stderr)
        return 1
    print("motanmesh ca: give an action: init or issue", file=sys.stderr)
    return 2
