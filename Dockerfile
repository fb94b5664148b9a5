# byoi-bot: a small image, non-root (numeric UID 10001), the SQLite store on the /data volume
# (or PostgreSQL: BYOI_DB=postgresql://…, psycopg is installed). docs/operations.md has more.
#   docker build -t byoi-bot .
#   docker run -d --name byoi-bot --stop-timeout 15 -v byoi-data:/data --env-file byoi.env byoi-bot
# Secrets (SLACK_*, OVH_*) come from the environment at run time; none is baked in.
# Dependencies are pinned, with hashes, in requirements.lock; regenerate it after changing
# pyproject.toml's dependencies with:
#   pip-compile --extra postgres --generate-hashes --allow-unsafe --strip-extras \
#     --no-emit-index-url --no-emit-find-links --output-file requirements.lock pyproject.toml
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    BYOI_DB=/data/byoi.db \
    BYOI_METRICS_PORT=9090

WORKDIR /app
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md LICENSE ./
COPY byoi_bot ./byoi_bot
RUN pip install --no-deps '.[postgres]' \
 && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin byoi \
 && mkdir -p /data && chown 10001:10001 /data

USER 10001:10001
VOLUME ["/data"]
# 3000: Slack's requests in HTTP mode (run --http); 9090: /healthz, /readyz, /metrics.
EXPOSE 3000 9090

# The bot is PID 1 and handles SIGTERM itself (a clean stop within BYOI_STOP_TIMEOUT, 10 s;
# give `docker stop` a longer --stop-timeout / stop_grace_period). No init is needed: the
# bot starts no long-lived child process.
STOPSIGNAL SIGTERM

# Liveness of the running process (its scheduler and outbox threads), not a configuration
# check. python, as the slim image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as r; r.build_opener(r.ProxyHandler({})).open('http://127.0.0.1:%s/healthz' % os.environ['BYOI_METRICS_PORT'], timeout=4)"]

ENTRYPOINT ["byoi-bot"]
CMD ["run"]
