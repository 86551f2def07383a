#!/bin/sh
# Restore a dump made by backup-database.sh into a NEW database (never over the live one), then
# check it with the portal's own commands. Usage:
#   sudo infra/scripts/restore-database.sh DUMP_FILE NEW_DATABASE
# Then point PORTAL_DATABASE_URL at NEW_DATABASE (or rename the databases) and restart.
set -eu
dump=$1
database=$2
sudo -u postgres createdb --owner=handover "$database"
sudo -u postgres pg_restore --no-owner --role=handover --dbname="$database" --exit-on-error "$dump"
# The restored copy must be intact before anyone relies on it.
set -a
. /etc/handover/handover.env
set +a
PORTAL_DATABASE_URL=$(printf '%s' "$PORTAL_DATABASE_URL" | sed "s#/[^/?]*\([?].*\)\{0,1\}\$#/$database\1#")
export PORTAL_DATABASE_URL
cd /opt/handover
sudo -E -u handover .venv/bin/flask --app portal audit verify
sudo -E -u handover .venv/bin/python infra/scripts/restore_check.py
