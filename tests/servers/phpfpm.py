"""A real php-fpm for tests, on 127.0.0.1 with a free port and a throw-away pool config.

Usage::

    with PhpFpm(tmp_path / "fpm") as fpm:   # skips (or fails, see tests.servers) without php-fpm
        fpm.port                            # FastCGI on 127.0.0.1:<port>
        fpm.script_dir                      # where tests put their scripts

The binary is ``$MOTANMESH_PHP_FPM``, else ``php-fpm`` or ``php-fpmX.Y`` on ``PATH`` or in
``/usr/sbin`` (Debian's ``php-fpm`` package installs ``/usr/sbin/php-fpm8.2``). php-fpm runs in
the foreground (``-F``) with only the config written here (``-n``: no php.ini either).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.servers import ServerProcess, free_port, missing_server

__all__ = ["PhpFpm", "php_fpm_binary", "require_php_fpm"]

START_SECONDS = 15.0


def php_fpm_binary() -> str | None:
    configured = os.environ.get("MOTANMESH_PHP_FPM")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    found = shutil.which("php-fpm")
    if found:
        return found
    for directory in [*os.environ.get("PATH", "").split(os.pathsep), "/usr/sbin"]:
        for candidate in sorted(glob.glob(os.path.join(directory, "php-fpm*.*"))):
            if os.access(candidate, os.X_OK):
                return candidate
    return None


def require_php_fpm() -> str:
    """The php-fpm executable; skips the test without one (fails when servers are required)."""
    binary = php_fpm_binary()
    if binary is None:
        message = "php-fpm not found (install Debian's php-fpm or set MOTANMESH_PHP_FPM)"
        missing_server(message)
    return binary


class PhpFpm(ServerProcess):
    """One php-fpm master with one static pool listening on 127.0.0.1."""

    def __init__(self, base: Path, *, children: int = 4) -> None:
        self.binary = require_php_fpm()
        self.base = base
        self.script_dir = base / "www"
        self.children = children
        self.port = free_port()
        self.log_file = base / "php-fpm.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> Path:
        self.script_dir.mkdir(parents=True, exist_ok=True)
        config = self.base / "php-fpm.conf"
        config.write_text(
            "[global]\n"
            f"pid = {self.base / 'php-fpm.pid'}\n"
            f"error_log = {self.log_file}\n"
            "daemonize = no\n"
            "[test]\n"
            f"listen = 127.0.0.1:{self.port}\n"
            "listen.allowed_clients = 127.0.0.1\n"
            "pm = static\n"
            f"pm.max_children = {self.children}\n"
            "catch_workers_output = yes\n"
            "clear_env = yes\n"
        )
        return config

    def start(self) -> None:
        config = self._write_config()
        argv = [self.binary, "-n", "-F", "-y", str(config)]
        if os.geteuid() == 0:
            argv.append("-R")  # the test may run as root; php-fpm refuses that without -R
        with (self.base / "stdout.log").open("ab") as out:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        logs = [p.read_text(errors="replace")[-2000:] for p in self.base.glob("*.log")]
        raise RuntimeError(f"php-fpm did not listen on 127.0.0.1:{self.port}:\n" + "\n".join(logs))

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # graceful stop of the master and its children
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def script(self, name: str, code: str) -> Path:
        path = self.script_dir / name
        path.write_text(code)
        return path
