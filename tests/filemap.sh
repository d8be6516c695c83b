#!/bin/sh
# tests/filemap.sh DESIGN.md: fail when DESIGN.md's "Source map" and the
# files under src/ disagree (`make layers`). In the map, "### `src/DIR/`"
# starts a directory and each `NAME.c`, `NAME.h` or `NAME.[ch]` in it
# names files there.
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk '
/^## Source map/ { on = 1; next }
on && /^## / { on = 0 }
!on { next }
/^### `src\// { dir = $2; gsub(/[`:]/, "", dir); next }
dir != "" {
	line = $0
	while (match(line, /`[A-Za-z0-9_.-]+\.(c|h|\[ch\])`/)) {
		f = substr(line, RSTART + 1, RLENGTH - 2)
		line = substr(line, RSTART + RLENGTH)
		if (f ~ /\.\[ch\]$/) {
			sub(/\.\[ch\]$/, "", f)
			print dir f ".c"
			print dir f ".h"
		} else {
			print dir f
		}
	}
}' "$1" | sort -u > "$tmp/map"
git ls-files 'src/*.c' 'src/*.h' 2>/dev/null | sort -u > "$tmp/tree"
[ -s "$tmp/tree" ] || find src -name '*.[ch]' | sort -u > "$tmp/tree"
if ! cmp -s "$tmp/map" "$tmp/tree"; then
	echo "filemap: DESIGN.md's Source map and src/ disagree" \
	    "(< only in the map, > only in the tree):" >&2
	diff "$tmp/map" "$tmp/tree" | grep '^[<>]' >&2
	exit 1
fi
