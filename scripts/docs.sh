#!/usr/bin/env bash
# Builds XferKit's DocC documentation (the reference of every public symbol and the tutorial,
# Sources/XferKit/XferKit.docc) with swift-docc-plugin, in its own build folder (.build-docs),
# and fails on any warning (a broken symbol link, a topic that names nothing, a parameter
# the documentation gets wrong).
set -euo pipefail
cd "$(dirname "$0")/.."
scratch="$PWD/.build-docs"
mkdir -p "$scratch"
log="$scratch/docc.log"
status=0
swift package --scratch-path "$scratch" generate-documentation --target XferKit >"$log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then cat "$log"; echo "docs: generate-documentation failed ($status)"; exit 1; fi
# DocC's own diagnostics (the package's build warnings, of other targets, are not documentation's).
if grep -E "^(warning|error):|: (warning|error): " "$log" | grep -v "/.build-docs/checkouts/" | grep -vi "zipfoundation" >"$scratch/warnings.txt"; then
    cat "$scratch/warnings.txt"
    echo "docs: $(wc -l <"$scratch/warnings.txt") warning(s)"
    exit 1
fi
grep -E "Generated documentation archive|Finished building documentation" "$log" || tail -3 "$log"
echo "docs: built without warnings"
