#!/bin/sh
# A brand-new Debian 12 root for the packaging tests (tests/blackbox/
# test_deb.py, test_fresh_root.py), made from a cache so only the first run
# pays for debootstrap.
#
#   tests/root/fresh-root.sh cache          make the cache if missing
#   tests/root/fresh-root.sh new DEST       DEST = a fresh copy of it
#   tests/root/fresh-root.sh enter DEST     mount /proc, /dev, /dev/pts and
#                                           the shared apt archive in DEST
#   tests/root/fresh-root.sh leave DEST     unmount them
#
# The cache ($POSTINO_ROOT_CACHE, default /var/cache/postino-test) holds
# bookworm-minbase.tar: `debootstrap --variant=minbase bookworm` plus git
# and make (the issue's newcomer: nothing else), and archives/, apt's
# downloaded packages, and lists/, apt's package lists (fetched once a
# day), shared by every root, so packages come from the mirror once.
# Remove the directory to start over.
set -eu
cache=${POSTINO_ROOT_CACHE:-/var/cache/postino-test}
tarball=$cache/bookworm-minbase.tar
mirror=${POSTINO_MIRROR:-http://deb.debian.org/debian}

make_cache() {
	[ -s "$tarball" ] && return 0
	mkdir -p "$cache/archives/partial"
	tmp=$(mktemp -d "$cache/build.XXXXXX")
	trap 'umount -R "$tmp/root/proc" 2>/dev/null || :; rm -rf "$tmp"' EXIT
	debootstrap --variant=minbase --include=git,make \
	    --cache-dir="$cache/archives" bookworm "$tmp/root" "$mirror" \
	    >"$tmp/log" 2>&1 || { tail -n 20 "$tmp/log" >&2; exit 1; }
	printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' \
	    "$mirror" "$mirror" > "$tmp/root/etc/apt/sources.list"
	# Keep what apt downloads: the archive directory is shared.
	rm -f "$tmp/root/etc/apt/apt.conf.d/docker-clean"
	printf 'Binary::apt::APT::Keep-Downloaded-Packages "true";\n' \
	    > "$tmp/root/etc/apt/apt.conf.d/10keep"
	rm -rf "$tmp/root/var/cache/apt/archives"/*.deb
	tar -C "$tmp/root" --numeric-owner -cf "$tarball.tmp" .
	mv "$tarball.tmp" "$tarball"
}

case "${1:-}" in
cache)
	make_cache
	;;
new)
	make_cache
	sh "$0" leave "$2"
	# Never delete through a mount (the host's /dev, the shared archive).
	if grep -q " $2/" /proc/self/mounts; then
		echo "fresh-root: $2 still has mounts; not removing it" >&2
		exit 1
	fi
	rm -rf "$2"
	mkdir -p "$2"
	tar -C "$2" --numeric-owner -xf "$tarball"
	;;
enter)
	d=$2
	mkdir -p "$cache/archives/partial"
	mountpoint -q "$d/proc" || mount -t proc proc "$d/proc"
	mountpoint -q "$d/dev" || mount --bind /dev "$d/dev"
	mountpoint -q "$d/dev/pts" || mount --bind /dev/pts "$d/dev/pts"
	mountpoint -q "$d/var/cache/apt/archives" ||
	    mount --bind "$cache/archives" "$d/var/cache/apt/archives"
	mkdir -p "$cache/lists/partial"
	mountpoint -q "$d/var/lib/apt/lists" ||
	    mount --bind "$cache/lists" "$d/var/lib/apt/lists"
	cp /etc/resolv.conf "$d/etc/resolv.conf" 2>/dev/null || :
	# Package lists: fetched once a day, shared like the archive.
	if [ -z "$(find "$cache/lists.stamp" -mmin -1440 2>/dev/null)" ]; then
		chroot "$d" apt-get update -qq </dev/null >/dev/null
		touch "$cache/lists.stamp"
	fi
	;;
leave)
	d=$2
	for m in var/lib/apt/lists var/cache/apt/archives dev/pts dev proc; do
		if mountpoint -q "$d/$m"; then
			umount "$d/$m" || umount -l "$d/$m"
		fi
	done
	;;
*)
	echo "usage: tests/root/fresh-root.sh cache | new DEST | enter DEST | leave DEST" >&2
	exit 2
	;;
esac
