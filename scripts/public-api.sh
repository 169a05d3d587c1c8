#!/usr/bin/env bash
# Counts XferKit's public API from the compiler's own symbol graph (what another package that
# depends on XferKit can name): top-level declarations, and every symbol (members included).
# Usage: scripts/public-api.sh [--list]   (after `swift build`; the symbol graph is a few seconds)
set -euo pipefail
cd "$(dirname "$0")/.."
log="$(mktemp)"
swift package dump-symbol-graph --minimum-access-level public >"$log" 2>&1 || { cat "$log"; exit 1; }
rm -f "$log"
python3 - "$@" <<'PY'
import collections, json, sys
import glob
folder = ".build/x86_64-unknown-linux-gnu/symbolgraph/"
# XferKit.symbols.json: XferKit's own types and functions; XferKit@Swift.symbols.json and the like:
# what XferKit adds to other modules' types (counted as members, never as top-level).
own = json.load(open(folder + "XferKit.symbols.json"))["symbols"]
added = [s for f in glob.glob(folder + "XferKit@*.symbols.json") for s in json.load(open(f))["symbols"]]
# Declarations written in XferKit's sources only (synthesised members, such as Equatable's !=, have no location).
syms = [s for s in own + added if "location" in s]
top = [s for s in syms if len(s["pathComponents"]) == 1 and s in own]
print(f"XferKit public API: {len(top)} top-level declarations, {len(syms)} symbols in all")
kinds = collections.Counter(s["kind"]["displayName"] for s in top)
print("  top-level by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
if "--list" in sys.argv:
    for s in sorted(top, key=lambda s: s["names"]["title"]):
        print(f"  {s['kind']['displayName']:<16} {s['names']['title']}")
PY
