#!/bin/sh
# Restore a dump made by backup-database.sh into a NEW database (never over the live one) and check
# it with the portal's own tools: the audit hash chain, then every document the copy holds a key for.
#   sudo infra/scripts/restore-database.sh /var/backups/handover/handover-20261124T010000Z.dump handover_restored
# When both checks pass, switch PORTAL_DATABASE_URL to the new database (or rename the databases
# while the portal is stopped) and start the portal. See infra/README.md, "Restoring".
set -eu
dump=$1
database=$2
here=$(dirname "$0")
sudo -u postgres createdb --owner=handover "$database"
sudo -u postgres pg_restore --no-owner --role=handover --exit-on-error --dbname="$database" "$dump"
PORTAL_DATABASE_URL="postgresql+psycopg://handover@/$database?host=/var/run/postgresql"
export PORTAL_DATABASE_URL
"$here/portal-run.sh" flask audit verify
"$here/portal-run.sh" python infra/scripts/restore_check.py
echo "Restored into $database and checked."
