# One image for the example services; each container runs one service's command
# (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The library first: its layer stays cached while only the services change.
COPY pyproject.toml README.md LICENSE ./
COPY servicebus ./servicebus
RUN pip install ".[postgres,fast,daphne,prometheus]"

COPY services ./services
# The shop's shared contract (shop_contracts: the bodies the services declare).
ENV PYTHONPATH=/app/services/contracts

# Databases live in /data (a volume per service); never run as root.
RUN useradd --create-home --uid 1000 app && mkdir /data && chown app /data
USER app

EXPOSE 8000
