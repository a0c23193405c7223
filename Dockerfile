# syntax=docker/dockerfile:1
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DATABASE_PATH=/data/bot.sqlite3 \
    LOG_FORMAT=json

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY migrations ./migrations
RUN pip install . && rm -rf /app/bot /app/migrations

RUN useradd --system --create-home --uid 10001 bot && mkdir -p /data && chown bot /data
USER bot
WORKDIR /home/bot
VOLUME ["/data"]

# SIGTERM (docker stop) lets streaming answers finish or stop cleanly.
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "bot"]
