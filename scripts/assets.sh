#!/usr/bin/env bash
# Builds the pages' embedded assets under internal/pages/assets from their
# pinned npm sources (make generate runs it; make check-generated fails when
# the committed files differ):
#   docs/vendor/  Swagger UI's bundle and stylesheet from swagger-ui-dist,
#                 with licence and notice, nothing else (no source maps).
set -euo pipefail
cd "$(dirname "$0")/.."
out=internal/pages/assets

dist=node_modules/swagger-ui-dist
rm -rf "$out/docs/vendor"
mkdir -p "$out/docs/vendor"
# The bundle's last line names its source map, which is not shipped.
sed '/^\/\/# sourceMappingURL=/d' "$dist/swagger-ui-bundle.js" > "$out/docs/vendor/swagger-ui-bundle.js"
sed 's|/\*# sourceMappingURL=[^*]*\*/||' "$dist/swagger-ui.css" > "$out/docs/vendor/swagger-ui.css"
cp "$dist/LICENSE" "$dist/NOTICE" "$out/docs/vendor/"
echo "swagger-ui-dist $(node -p "require('./$dist/package.json').version")" > "$out/docs/vendor/VERSION"

# ui/ (the log viewer and the plain pages' stylesheet): static files as they
# are, and one bundle built by esbuild from ui/src after tsc checks it
# against the generated types in gen/ts.
rm -rf "$out/ui"
mkdir -p "$out/ui"
cp ui/static/* "$out/ui/"
node_modules/.bin/tsc -p ui
node_modules/.bin/esbuild ui/src/main.ts --bundle --format=iife --target=es2022 --minify \
  --legal-comments=none --charset=utf8 --log-level=warning --outfile="$out/ui/viewer.js"
