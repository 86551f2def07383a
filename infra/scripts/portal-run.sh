#!/bin/sh
# Run a command as the portal's user, with its settings (/etc/handover/handover.env) and the same
# sandbox as the scheduled jobs: how an operator runs `flask --app portal ...` on the Debian install.
#   sudo infra/scripts/portal-run.sh flask db upgrade
#   sudo infra/scripts/portal-run.sh flask create-org --kind school --name "..." ...
#   sudo infra/scripts/portal-run.sh python infra/scripts/restore_check.py
# "flask" means the virtualenv's flask with --app portal, "python" the virtualenv's python. One
# setting can be replaced for this run, e.g. a restored copy of the database:
#   sudo PORTAL_DATABASE_URL=postgresql+psycopg://handover@/handover_restored?host=/var/run/postgresql \
#        infra/scripts/portal-run.sh flask audit verify
# (systemd reads the env file itself: its values may hold spaces and "<", which a shell would mangle.)
set -eu
[ "$#" -ge 1 ] || { echo "usage: $0 flask|python|COMMAND [ARGS...]" >&2; exit 2; }
case "$1" in
  flask) shift; set -- /opt/handover/.venv/bin/flask --app portal "$@" ;;
  python) shift; set -- /opt/handover/.venv/bin/python "$@" ;;
esac
override=
if [ -n "${PORTAL_DATABASE_URL:-}" ]; then override="PORTAL_DATABASE_URL=$PORTAL_DATABASE_URL"; fi
# The override goes through env(1): systemd would let the EnvironmentFile win over --setenv.
exec systemd-run --quiet --wait --pipe --collect \
  --uid=handover --gid=handover --working-directory=/opt/handover \
  --property=EnvironmentFile=/etc/handover/handover.env \
  --setenv=PORTAL_INSTANCE_PATH=/var/lib/handover --setenv=PYTHONDONTWRITEBYTECODE=1 \
  --property=ProtectSystem=strict --property=ProtectHome=yes --property=PrivateTmp=yes \
  --property=NoNewPrivileges=yes --property=StateDirectory=handover --property=UMask=0077 \
  /usr/bin/env $override "$@"
