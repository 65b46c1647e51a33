# One image for the five meterline processes (api, ingest, aggregator, alerts, biller) and the one-shot init.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 METERLINE_HOME=/var/lib/meterline
WORKDIR /app
# the font invoice documents are written in (rater.billing.pdf)
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY meterline ./meterline
COPY ingest ./ingest
COPY aggregator ./aggregator
COPY rater ./rater
COPY core ./core
COPY schemas ./schemas
RUN pip install --no-cache-dir . && useradd --system --home /var/lib/meterline meterline \
    && mkdir -p /var/lib/meterline && chown meterline /var/lib/meterline
USER meterline
ENTRYPOINT ["meterline"]
