"""Client and service libraries for applications that speak Motan2.

* :class:`MotanClient` / :class:`BlockingMotanClient`: call services, through the local
  client agent (``127.0.0.1:9981``) or directly.
* :class:`ServiceRegistry` / :class:`MotanService` / :class:`ServiceServer`: serve Python
  callables as Motan2 services.
* :class:`MotanRemoteError` and its subclasses: exception responses, on both sides.
"""

from motanmesh.sdk.client import DEFAULT_ADDRESS, BlockingMotanClient, MotanClient, decode_response
from motanmesh.sdk.errors import (
    MotanBizError,
    MotanFrameworkError,
    MotanRemoteError,
    MotanServiceError,
    remote_error,
)
from motanmesh.sdk.service import (
    CallContext,
    Dispatcher,
    MotanService,
    ServiceRegistry,
    ServiceServer,
)

__all__ = [
    "DEFAULT_ADDRESS",
    "BlockingMotanClient",
    "CallContext",
    "Dispatcher",
    "MotanBizError",
    "MotanClient",
    "MotanFrameworkError",
    "MotanRemoteError",
    "MotanService",
    "MotanServiceError",
    "ServiceRegistry",
    "ServiceServer",
    "decode_response",
    "remote_error",
]
