# driftline worker image: `docker build -t driftline .`, or let docker-compose.yml build it.
# Runs any driftline command; the compose file starts `driftline worker --role score|join|train`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DRIFTLINE_STATE_DIR=/var/lib/driftline \
    DRIFTLINE_METRICS_PORT=9108

WORKDIR /opt/driftline

# The pinned versions the project is tested with; every dependency ships a wheel, so no compiler is needed.
COPY constraints.txt pyproject.toml README.md ./
COPY driftline/ driftline/
COPY streams/ streams/
COPY learners/ learners/
COPY schemas/ schemas/
COPY connectors/ connectors/
COPY bench/ bench/
RUN pip install -c constraints.txt ".[fast]" \
    && useradd --system --uid 10001 --home-dir /var/lib/driftline --shell /usr/sbin/nologin driftline \
    && mkdir -p /var/lib/driftline/artifacts \
    && chown -R driftline:driftline /var/lib/driftline

USER driftline
VOLUME ["/var/lib/driftline"]
EXPOSE 9108

# Healthy while the worker serves its metrics endpoint.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/metrics' % os.environ.get('DRIFTLINE_METRICS_PORT', '9108'), timeout=4)"

ENTRYPOINT ["driftline"]
CMD ["worker", "--role", "all"]
