#!/bin/sh
# tests/funclen.sh MAX FILE...: fail when a function body is longer than MAX
# lines (`make layers`, in `make check`). Functions are found as style(9)
# lays them out: the name at the start of a line, the body from a "{" alone
# on a line to the next "}" alone on a line. A function may be longer when
# a comment just above it says why, starting "/* Long:".
set -eu
max=$1
shift
awk -v max="$max" '
FNR == 1 { excused = 0; start = 0 }
/^\/\* Long:/ { excused = 1 }
/^[a-z_][a-z_0-9]*\(/ { name = $0; sub(/\(.*/, "", name) }
/^\{$/ { start = FNR }
/^\}$/ && start {
	n = FNR - start - 1
	if (n > max && !excused) {
		printf "%s:%d: %s is %d lines (at most %d)\n", FILENAME,
		    start, name, n, max
		bad = 1
	}
	start = 0
	excused = 0
}
END { exit bad }
' "$@" >&2 || { echo "funclen: split the functions above" >&2; exit 1; }
