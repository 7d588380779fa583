"""The cluster layer: load balancers and HA strategies over a refer's endpoints.

:mod:`~motanmesh.cluster.lb` chooses endpoints, :mod:`~motanmesh.cluster.group_weights`
splits traffic between provider groups, :mod:`~motanmesh.cluster.ha` runs a call (retries,
backup requests) and always answers with a frame. Everything here is logic over the
:class:`~motanmesh.cluster.types.EndpointLike` interface; sockets live in the transport.
"""

from motanmesh.cluster.errors import (
    E_NO_ENDPOINTS,
    ClusterError,
    UnknownExtensionError,
    call_error_response,
    error_response,
    is_biz_exception,
    is_failure,
    no_endpoints_response,
)
from motanmesh.cluster.group_weights import GroupWeightedLoadBalancer, parse_group_weights
from motanmesh.cluster.ha import (
    BackupRequestHa,
    FailfastHa,
    FailoverHa,
    HaStrategy,
    create_ha,
    ha_names,
    register_ha,
)
from motanmesh.cluster.lb import (
    ConsistentHashLoadBalancer,
    LeastRequestLoadBalancer,
    LoadBalancer,
    RandomLoadBalancer,
    RoundRobinLoadBalancer,
    WeightedRoundRobinLoadBalancer,
    create_load_balancer,
    load_balancer_names,
    register_load_balancer,
)
from motanmesh.cluster.types import EndpointLike

__all__ = [
    "E_NO_ENDPOINTS",
    "BackupRequestHa",
    "ClusterError",
    "ConsistentHashLoadBalancer",
    "EndpointLike",
    "FailfastHa",
    "FailoverHa",
    "GroupWeightedLoadBalancer",
    "HaStrategy",
    "LeastRequestLoadBalancer",
    "LoadBalancer",
    "RandomLoadBalancer",
    "RoundRobinLoadBalancer",
    "UnknownExtensionError",
    "WeightedRoundRobinLoadBalancer",
    "call_error_response",
    "create_ha",
    "create_load_balancer",
    "error_response",
    "ha_names",
    "is_biz_exception",
    "is_failure",
    "load_balancer_names",
    "no_endpoints_response",
    "parse_group_weights",
    "register_ha",
    "register_load_balancer",
]
