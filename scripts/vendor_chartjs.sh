#!/usr/bin/env bash
# Vendors Chart.js (MIT) into framesift/report/assets/: the one charting library the report uses, inlined into
# every report so that it opens offline. Run it to upgrade: ./scripts/vendor_chartjs.sh 4.6.1
# It takes the npm package's prebuilt UMD bundle as it is, and its licence; nothing is rebuilt.
set -euo pipefail

version="${1:-4.6.1}"
assets="$(cd "$(dirname "$0")/.." && pwd)/framesift/report/assets"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "chart.js@$version" >/dev/null && tar xzf "chart.js-$version.tgz")
# The source map it names is not shipped: drop the comment, so a browser's developer tools do not look for it.
sed '/^\/\/# sourceMappingURL=/d' "$work/package/dist/chart.umd.min.js" > "$assets/chart.umd.min.js"
cp "$work/package/LICENSE.md" "$assets/chart.js-LICENSE.md"
echo "vendored Chart.js $version into $assets ($(wc -c < "$assets/chart.umd.min.js") bytes)"
