"""Ways for applications to reach the client agent besides Motan2 on the client port.

* ``ingress.grpc``: the gRPC port (``grpcPort``), see :mod:`.grpc`;
* ``ingress.http``: the HTTP forward proxy on ``hport`` (``/proxy_to_rpc``, HTTP-over-Motan for
  the ``http-client`` domains, plain HTTP proxying and ``CONNECT`` tunnels).

The package sits between the cluster layer and the agent: the agent hands it a router and a
way to build clusters, and it never imports the agent.
"""
