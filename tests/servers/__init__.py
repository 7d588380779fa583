"""Real backend servers (ZooKeeper, ...) started on 127.0.0.1 for the integration tests.

Each helper runs the server from its installed binaries with a throw-away data directory and
a free port, and reports why when the binaries are missing so that tests can skip with a
clear reason. Set ``MOTANMESH_REQUIRE_SERVERS=1`` (CI does) to turn such skips into failures.
"""

from __future__ import annotations

import os

REQUIRE_ENV = "MOTANMESH_REQUIRE_SERVERS"


def servers_required() -> bool:
    """Whether a missing server must fail the tests instead of skipping them."""
    return os.environ.get(REQUIRE_ENV, "") not in {"", "0", "false", "no"}
