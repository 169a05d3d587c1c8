#!/usr/bin/env bash
# Writes docs/xfer.1, the man page, from the command line's own definitions with
# swift-argument-parser's generate-manual plugin (a debug build; about a minute the first time).
#
#   scripts/man.sh           regenerate docs/xfer.1
#   scripts/man.sh --check   exit 1 if docs/xfer.1 is not what the current sources generate
#
# Install: cp docs/xfer.1 /usr/local/share/man/man1/  (then `man xfer`), or read it with `man ./docs/xfer.1`.
set -euo pipefail
cd "$(dirname "$0")/.."
swift package plugin generate-manual --configuration debug >/dev/null
generated=.build/plugins/GenerateManual/outputs/xfer/xfer.1
# The page's date line (.Dd) changes every day; the check compares everything else.
if [[ "${1:-}" == "--check" ]]; then
    if diff <(grep -v '^\.Dd ' "$generated") <(grep -v '^\.Dd ' docs/xfer.1) >/dev/null; then
        echo "docs/xfer.1 is current"
    else
        echo "docs/xfer.1 is out of date: run scripts/man.sh" >&2
        exit 1
    fi
else
    cp "$generated" docs/xfer.1
    echo "wrote docs/xfer.1"
fi
