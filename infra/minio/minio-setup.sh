#!/bin/sh
# Prepare MinIO for Handover (run by the minio-setup service; safe to run again).
set -eu
mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
# Versioned, like the AWS bucket: a deleted or overwritten object keeps its old version until the
# lifecycle rule below expires it (crypto-shredding makes those versions unreadable anyway).
mc mb --ignore-existing --with-versioning "local/$HANDOVER_BUCKET"
mc version enable "local/$HANDOVER_BUCKET"
mc anonymous set private "local/$HANDOVER_BUCKET"
mc ilm import "local/$HANDOVER_BUCKET" < /setup/lifecycle.json
# The portal's own user may touch only this bucket (documents/ prefix), nothing else.
sed "s/@BUCKET@/$HANDOVER_BUCKET/g" /setup/portal-policy.json > /tmp/portal-policy.json
mc admin policy create local handover-portal /tmp/portal-policy.json
mc admin user add local "$HANDOVER_S3_ACCESS_KEY" "$HANDOVER_S3_SECRET_KEY"
mc admin policy attach local handover-portal --user "$HANDOVER_S3_ACCESS_KEY" 2>/dev/null || true
echo "MinIO ready: bucket $HANDOVER_BUCKET, user $HANDOVER_S3_ACCESS_KEY"
