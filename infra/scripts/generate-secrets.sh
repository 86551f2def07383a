#!/bin/sh
# Print fresh secrets for /etc/handover/handover.env (to standard output only: nothing is written).
#   PORTAL_SECRET_KEY  signs session cookies and CSRF tokens (64 random URL-safe characters)
#   PORTAL_KEYRING     key-encryption keys, "id:base64(32 random bytes)"; the id names the key in
#                      every wrapped document key, so use a new id at each rotation (kek-2026-11, ...)
# Usage: infra/scripts/generate-secrets.sh [KEY_ID]
set -eu
key_id=${1:-kek-$(date -u +%Y-%m)}
python3 - "$key_id" <<'PY'
import base64, os, secrets, sys
print(f"PORTAL_SECRET_KEY={secrets.token_urlsafe(48)}")
print(f"PORTAL_KEYRING={sys.argv[1]}:{base64.b64encode(os.urandom(32)).decode('ascii')}")
PY
