#!/bin/sh
# tests/layers.sh LOWER.a UPPER.a...: fail when LOWER uses a symbol that it
# does not define itself but one of the UPPER archives does, i.e. when code
# depends on a layer above it or beside it (`make layers`, in `make check`).
set -eu
lower=$1
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

nm -g --defined-only "$lower" 2>/dev/null | awk 'NF == 3 { print $3 }' |
	sort -u > "$tmp/defined"
nm -g --undefined-only "$lower" | awk '{ print $NF }' | sort -u |
	comm -23 - "$tmp/defined" > "$tmp/used"
for upper in "$@"; do
	nm -g --defined-only "$upper" 2>/dev/null | awk 'NF == 3 { print $3 }'
done | sort -u > "$tmp/upper"
comm -12 "$tmp/used" "$tmp/upper" > "$tmp/wrong"
if [ -s "$tmp/wrong" ]; then
	echo "layers: ${lower##*/} uses symbols of $*:" >&2
	sed 's/^/    /' "$tmp/wrong" >&2
	exit 1
fi
