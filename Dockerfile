# syntax=docker/dockerfile:1
# Image of every BESS deployable (api, stream workers, projector, gateways, topic init): the
# `bess` CLI picks the service, e.g. `docker run bess:local worker indicators --web-port 6066`.
# Used by docker-compose.yml; configuration comes from BESS_* environment variables.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# the project metadata first, then the packages (see [tool.setuptools.packages.find])
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY domain ./domain
COPY streams ./streams
COPY projections ./projections
COPY gateways ./gateways
COPY api ./api
COPY infra ./infra
RUN pip install . && rm -rf build *.egg-info

# shipped market data replayed by `bess gateway market-data --source file`
COPY data ./data

RUN useradd --system --uid 10001 --home-dir /var/lib/bess --create-home bess
USER bess

# the installed package lives in site-packages, so point the settings at /app/data and a
# writable state directory; listen on all interfaces inside the container
ENV BESS_HOME=/var/lib/bess \
    BESS_REPLAY_FILE=/app/data/at_hourly_2015_2023.csv \
    BESS_API_HOST=0.0.0.0 \
    BESS_LOG_JSON=true

EXPOSE 8000 6066
ENTRYPOINT ["bess"]
CMD ["--help"]
