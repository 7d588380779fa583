# The motanmesh agent as a container image. Build the wheel first, then the image:
#   python -m build --wheel && docker build -t motanmesh:0.1.0 .
# Run it with the agent's config mounted at /etc/motanmesh/agent.yaml (docs/deploy.md).
# The wheel must match the image's Python (3.11); a pure-Python wheel
# (MOTANMESH_PURE_PYTHON=1 python -m build --wheel) fits any 3.11+ image.
FROM python:3.11-slim-bookworm

COPY dist/motanmesh-*.whl /tmp/wheels/
RUN pip install --no-cache-dir --no-compile /tmp/wheels/motanmesh-*.whl \
    && rm -rf /tmp/wheels \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/motanmesh --create-home motanmesh

USER 10001:10001
WORKDIR /var/lib/motanmesh
# client port (the application's calls), export port (served services), management API
EXPOSE 9981 9982 8002
# SIGTERM drains: unavailable in the registries, serve for drainTime seconds, exit 0
STOPSIGNAL SIGTERM
ENTRYPOINT ["motanmesh"]
CMD ["agent", "-c", "/etc/motanmesh/agent.yaml"]
