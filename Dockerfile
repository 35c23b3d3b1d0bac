# One image for every OW Victory Counter service: `docker run IMAGE capture|inference|state|gateway`.
# Layers are ordered from least to most often changed, so editing code rebuilds only the last layers.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Where pip finds packages: unset by default (PyPI). Without registry access, serve a
# wheelhouse and pass e.g. --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=http://HOST:PORT/
# --build-arg PIP_TRUSTED_HOST=HOST
# (pip reads these variables itself; the compose test tier does this). Build-time only.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
ARG PIP_TRUSTED_HOST

# 1. Dependencies only: pyproject's [project] dependencies, pinned by constraints.txt (a new
#    dependency flows in without editing this file). Reused until either file changes.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt -c constraints.txt \
    && rm /tmp/requirements.txt

# 2. The shipped model (models/victory_classifier.onnx + its .json metadata).
COPY models/ models/

# 3. The code. Editable install: the `owc` command imports from /app, so the
#    default model path (<project>/models/…) resolves to the baked-in model.
#    Byte-compiled here because the non-root user cannot write /app at run time;
#    the last line fails the build if a service module does not import (training/ is not
#    in the image: its commands explain that instead of breaking the CLI).
COPY README.md ./
COPY services/ services/
RUN pip install --no-deps -e . \
    && python -m compileall -q services \
    && python -c "import services.cli; services.cli.build_parser()" \
    && owc --help > /dev/null

# One health check for every service: GET /metrics on the port(s) the container listens on
# (see deploy/docker/healthcheck.py; standard library only, no configuration needed).
COPY deploy/docker/healthcheck.py /usr/local/bin/owc-healthcheck

RUN groupadd --system --gid 10001 owc \
    && useradd --system --uid 10001 --gid owc --no-create-home --shell /usr/sbin/nologin owc \
    && mkdir -p /config
USER owc

# Optional owc.toml and custom.css: mount a folder here (compose mounts ./config read-only).
WORKDIR /config

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/usr/local/bin/owc-healthcheck"]

ENTRYPOINT ["owc"]
CMD ["--help"]
