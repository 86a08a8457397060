#!/usr/bin/env bash
# Copies the front-end libraries of the web UI and of /docs from npm into the package, so
# neither needs a CDN or any network at run time. Run after changing ui/package.json:
# `make vendor-ui`.
set -euo pipefail
cd "$(dirname "$0")"
# No install scripts: swagger-ui-dist pulls in @scarf/scarf, whose postinstall reports the
# installation to a third party; the files we copy need no build step.
npm ci --no-audit --no-fund --silent --ignore-scripts
out=../core/registrum/server/ui/static/vendor
mkdir -p "$out" "$out/swagger-ui"
cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css "$out/"
cp node_modules/uplot/LICENSE "$out/uPlot.LICENSE"
# Swagger UI for /docs: the bundle, its style sheet, its icon and the licenses (its own and
# those of the libraries bundled into it), nothing else.
swagger=node_modules/swagger-ui-dist
cp "$swagger/swagger-ui-bundle.js" "$swagger/swagger-ui.css" "$swagger/favicon-32x32.png" \
  "$out/swagger-ui/"
cp "$swagger/LICENSE" "$out/swagger-ui/LICENSE"
cp "$swagger/swagger-ui-bundle.js.LICENSE.txt" "$out/swagger-ui/"
if [ -f "$swagger/NOTICE" ]; then cp "$swagger/NOTICE" "$out/swagger-ui/NOTICE"; fi
echo "vendored into $out: $(cd "$out" && find . -type f | sort | tr '\n' ' ')"
