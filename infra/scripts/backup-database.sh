#!/bin/sh
# Dump the portal's database (custom format, compressed) to a file readable by root only.
# Usage: sudo -u postgres infra/scripts/backup-database.sh [DATABASE] [DIRECTORY]
# Ship the file off the server encrypted (infra/README.md, "Backups"). The dump holds wrapped
# document keys, sealed TOTP seeds and the audit trail: treat it like the database itself.
set -eu
database=${1:-handover}
directory=${2:-/var/backups/handover}
umask 077
mkdir -p "$directory"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
target="$directory/$database-$stamp.dump"
pg_dump --format=custom --compress=9 --no-owner --file="$target.partial" "$database"
mv "$target.partial" "$target"
pg_restore --list "$target" >/dev/null   # the archive is readable end to end
echo "$target"
