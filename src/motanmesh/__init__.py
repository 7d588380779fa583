"""motanmesh: a Motan2 service-mesh agent (WeiboMesh) and its control plane."""

__version__ = "0.1.0"
