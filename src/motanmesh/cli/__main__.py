"""``python -m motanmesh.cli``: the same as the ``motanmesh`` console script."""

from motanmesh.cli import main

raise SystemExit(main())
