#!/usr/bin/env bash
# Copies the web UI's front-end libraries from npm into the package, so the UI needs
# no CDN and no network at run time. Run after changing ui/package.json: `make vendor-ui`.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --silent
out=../core/registrum/server/ui/static/vendor
mkdir -p "$out"
cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css "$out/"
cp node_modules/uplot/LICENSE "$out/uPlot.LICENSE"
echo "vendored into $out: $(ls "$out" | tr '\n' ' ')"
