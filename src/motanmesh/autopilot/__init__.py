"""The decision system: telemetry from the agents, a capacity model per service, a policy, and
traffic-switch commands written to the registry (``motanmesh autopilot``).

Layer 6, beside ``control`` (whose command authoring it uses); the data plane never imports
it. See ``docs/autopilot.md``.
"""

from motanmesh.autopilot.config import AutopilotConfig, AutopilotConfigError, load_config
from motanmesh.autopilot.runner import Autopilot

__all__ = ["Autopilot", "AutopilotConfig", "AutopilotConfigError", "load_config"]
