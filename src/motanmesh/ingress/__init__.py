"""Ways for applications to reach the client agent besides Motan2 (gRPC: :mod:`.grpc`)."""
