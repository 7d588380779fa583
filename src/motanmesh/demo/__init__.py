"""The demo service: ``com.weibo.motan.demo.service.MotanDemoService`` in Python."""

from motanmesh.demo.service import (
    DEMO_GROUP,
    DEMO_SERVICE,
    MotanDemoService,
    demo_registry,
    run_demo_service,
)

__all__ = ["DEMO_GROUP", "DEMO_SERVICE", "MotanDemoService", "demo_registry", "run_demo_service"]
