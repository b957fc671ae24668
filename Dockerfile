# railguard itself, to run next to the app: a second CapRover app (or a sidecar) that mounts the
# app's data directory at /app/data. `railguard daemon` by default; `docker run IMAGE backup`
# (or any other command) runs that command once. docs/install.md explains the choices below.
#
#   docker build -t railguard .
#   docker run -d --name railguard -v /srv/tasks/data:/app/data railguard
#
# BASE_IMAGE: any Debian-based image with python3 (3.11+). The tests pass a local debootstrap image.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
# Debian's own python3 comes without venv/ensurepip (package python3-venv); the python:* images
# have them. Only this stage needs them: the final image gets the finished virtual environment.
RUN if ! python3 -c "import ensurepip" 2>/dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends python3-venv \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3 -m venv /opt/railguard
COPY . /src
# EXTRAS: the optional parts (s3: boto3; encrypt: pyrage). "" installs the core only.
ARG EXTRAS=s3,encrypt
# From PyPI; or, when the build context has a wheelhouse/ (railguard's wheel and its
# dependencies: pip wheel --wheel-dir wheelhouse '.[s3,encrypt]'), from it alone, offline.
RUN extras="${EXTRAS:+[$EXTRAS]}" \
    && if [ -d /src/wheelhouse ]; then \
        /opt/railguard/bin/pip install --no-cache-dir --disable-pip-version-check --no-index \
            --find-links /src/wheelhouse "railguard$extras"; \
    else \
        /opt/railguard/bin/pip install --no-cache-dir --disable-pip-version-check "/src$extras"; \
    fi \
    && /opt/railguard/bin/railguard --version

FROM ${BASE_IMAGE}
# The same path as in the build stage: a virtual environment's scripts name their interpreter
# by absolute path, and its python is a link to the base image's python3.
COPY --from=build /opt/railguard /opt/railguard
# RAILGUARD_UID: the user railguard runs as. It must be able to write the app's data directory
# (it reads the database, SQLite writes the -shm file, backups go to /app/data/backups), so use
# the uid the app writes its files with. 1000 is the first user on Debian and the `node` and
# `bun` users of the official images; 0 runs as root (for an app that runs as root).
ARG RAILGUARD_UID=1000
RUN if [ "$RAILGUARD_UID" != 0 ]; then \
        groupadd --gid "$RAILGUARD_UID" railguard \
        && useradd --uid "$RAILGUARD_UID" --gid "$RAILGUARD_UID" --no-create-home --home-dir /var/lib/railguard \
           --shell /usr/sbin/nologin railguard; \
    fi \
    && mkdir -p /etc/railguard /var/lib/railguard /app/data \
    && chown "$RAILGUARD_UID:$RAILGUARD_UID" /var/lib/railguard /app/data
ENV PATH=/opt/railguard/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    RAILGUARD_HEALTHZ_URL=http://127.0.0.1:9180/healthz
# railguard.toml is read from the working directory: mount or COPY one here. Without one, the
# built-in defaults apply: app "tasks", /app/data/tasks.db, backups in /app/data/backups, daily at 03:30.
WORKDIR /etc/railguard
# /app/data: mount the app's data directory here (the database, and backups/ next to it).
# state_dir: daemon.db remembers the last success of each job (the catch-up after downtime).
VOLUME /app/data /var/lib/railguard
USER ${RAILGUARD_UID}

# Deployed as a CapRover app, the image knows its commit: CapRover passes it only as this build
# arg, ENV keeps it (docker inspect, `env` in the container). Late, to keep the layers above cached.
ARG CAPROVER_GIT_COMMIT_SHA
ENV CAPROVER_GIT_COMMIT_SHA=${CAPROVER_GIT_COMMIT_SHA}

# Strict: exit 0 only for a 200 from the daemon's /healthz (503 when its loop is stuck), never
# `|| exit 0`. RAILGUARD_HEALTHZ_URL must follow [daemon] listen. The probe gives up after 5 s,
# before Docker's --timeout, so its reason lands in `docker inspect`.
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD /opt/railguard/bin/python -I -m railguard.probe --timeout 5 "$RAILGUARD_HEALTHZ_URL"

# Exec form: railguard is PID 1 and gets docker stop's SIGTERM itself; the daemon passes it to
# the running job and waits up to stop_grace (docker stop's own default wait is 10 s: use -t 150).
ENTRYPOINT ["railguard"]
CMD ["daemon"]
