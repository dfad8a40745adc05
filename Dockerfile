# The demo site (and `manage.py generate_activity`) for docker-compose.yml: gunicorn on :8000.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    EVENTTRAIL_VAR_DIR=/var/lib/eventtrail

WORKDIR /srv/eventtrail

# Installed with the same pins as development and CI.
COPY pyproject.toml constraints.txt README.md ./
COPY app ./app
RUN pip install -c constraints.txt '.[server]'

# An unprivileged user; the spool and static directories are owned by it so the named
# volumes mounted over them start out writable.
RUN useradd --system --uid 10001 --home-dir /srv/eventtrail --shell /usr/sbin/nologin eventtrail \
    && mkdir -p /var/lib/eventtrail/static \
    && chown -R eventtrail /var/lib/eventtrail
USER eventtrail

WORKDIR /srv/eventtrail/app
EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--worker-class", "sync"]
