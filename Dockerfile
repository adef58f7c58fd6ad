# syntax=docker/dockerfile:1.7
# One image for every agentstream part. The part is chosen by the first argument of the
# entrypoint (deploy/docker/entrypoint.sh): api | gateway | sink | processors | init | ...
#
#   docker build -t agentstream:dev .
#   docker run --rm agentstream:dev api
#
# Two stages: `build` has pip, a compiler and the sources; `runtime` gets only the finished
# virtualenv, so no build tool, cache or source tree ships in the image that runs.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# A compiler only for any dependency that has no wheel for this platform; it stays in this stage.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/agentstream
ENV PATH=/opt/agentstream/bin:$PATH
WORKDIR /src

# Dependencies first, in their own layer: they change far less often than the code.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt

COPY setup.py README.md ./
COPY schemas ./schemas
COPY producer ./producer
COPY stream_processors ./stream_processors
COPY sink ./sink
COPY api ./api
COPY cli ./cli
# Not editable: the runtime stage has no /src. Bytecode is compiled here because the runtime
# root filesystem is read-only.
RUN pip install --no-deps . \
 && python -m compileall -q /opt/agentstream/lib \
 && agentstream --help > /dev/null

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="agentstream" \
      org.opencontainers.image.description="Kafka-native, privacy-safe telemetry for fleets of AI agents" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric uid/gid so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
# HOME is the working directory, the one writable place besides /tmp once the root filesystem
# is read-only, so anything a library caches under ~ lands on the mounted volume.
RUN groupadd --system --gid 10001 agentstream \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/agentstream --no-create-home \
      --shell /usr/sbin/nologin agentstream \
 && mkdir -p /var/lib/agentstream /etc/agentstream \
 && chown 10001:10001 /var/lib/agentstream
COPY --from=build /opt/agentstream /opt/agentstream
COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/agentstream-entrypoint
ENV PATH=/opt/agentstream/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/agentstream
# Relative data paths of the embedded defaults (.agentstream/...) land here; Kubernetes mounts
# an emptyDir on it because the root filesystem is read-only.
WORKDIR /var/lib/agentstream
USER 10001:10001
# query API, ingest gateway, processors web/metrics, sink metrics
EXPOSE 8000 8001 6066 9108
ENTRYPOINT ["/usr/local/bin/agentstream-entrypoint"]
CMD ["help"]
