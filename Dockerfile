# byoi-bot: a small image, non-root, the SQLite store on the /data volume (or PostgreSQL:
# BYOI_DB=postgresql://…, psycopg is installed).
#   docker build -t byoi-bot .
#   docker run -d --name byoi-bot -v byoi-data:/data --env-file byoi.env byoi-bot
# Secrets (SLACK_*, OVH_*) come from the environment at run time; none is baked in.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    BYOI_DB=/data/byoi.db

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY byoi_bot ./byoi_bot
RUN pip install '.[postgres]' \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin byoi \
 && mkdir -p /data && chown byoi /data

USER byoi
VOLUME ["/data"]
EXPOSE 3000

# `byoi-bot check --offline` validates the configuration and that the store is writable.
HEALTHCHECK --interval=60s --timeout=10s --start-period=20s --retries=3 \
  CMD ["byoi-bot", "check", "--offline"]

ENTRYPOINT ["byoi-bot"]
CMD ["run"]
