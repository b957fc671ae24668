#!/bin/sh
# exec: the server replaces this shell, so `docker stop` (SIGTERM) reaches it directly. No sleep:
# the HEALTHCHECK start period covers start-up, and /health says when the app is ready.
set -eu
exec python3 /app/app.py
