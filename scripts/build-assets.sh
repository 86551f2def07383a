#!/bin/sh
# Build Handover's front-end assets into static/build/ (git-ignored): GOV.UK Frontend's Sass compiled
# with Handover's brand and font settings, and GOV.UK Frontend's JavaScript module, both served by the
# portal itself (no CDN). Needs `npm ci` first; `make setup` runs both.
set -eu
cd "$(dirname "$0")/.."
out=static/build
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
node_modules/.bin/sass --no-source-map --style=compressed --quiet-deps \
  --load-path=node_modules/govuk-frontend/dist \
  static/src/handover.scss "$out.tmp/handover.css"
cp node_modules/govuk-frontend/dist/govuk/govuk-frontend.min.js "$out.tmp/govuk-frontend.min.js"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "Built $out/: $(ls "$out" | tr '\n' ' ')"
