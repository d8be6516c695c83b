#!/bin/sh
# Install what Postino needs from Debian's packages, only what is missing.
#   tests/deps.sh server       what `make server` needs (postinod, postino-passwd)
#   tests/deps.sh build        that, plus the client: what `make` and `make run` need
#   tests/deps.sh              that, plus everything `make check` runs
#   tests/deps.sh check GROUP  install nothing: name what GROUP lacks, with
#                              the apt-get line, and fail (what `make` runs first)
set -eu

server="gcc make libc6-dev libssl-dev libcrypt-dev openssl libpq-dev"
build="$server pkg-config libgmime-3.0-dev"
# Packaging and its tests: the man-page check (man-db, groff-base), make
# deb (build-essential, debhelper, dpkg-dev, fakeroot, lintian), the units
# (systemd: systemd-analyze, -sysusers, -tmpfiles; nothing is started), the
# fresh Debian roots (debootstrap, git).
pkg="man-db groff-base build-essential debhelper dpkg-dev fakeroot lintian
	systemd debootstrap git"
tests="libcmocka-dev python3 python3-pytest python3-cryptography curl fetchmail mpop getmail6 perl
	libio-socket-ssl-perl dovecot-pop3d tmux w3m clang libclang-rt-14-dev
	postfix dovecot-lmtpd util-linux strace haproxy postgresql-15 $pkg"

check=false
if [ "${1:-}" = check ]; then
	check=true
	shift
fi
case "${1:-all}" in
server)	want="$server" ;;
build)	want="$build" ;;
all)	want="$build $tests" ;;
*)	echo "usage: tests/deps.sh [check] [server|build|all]" >&2; exit 2 ;;
esac

# Not Debian: nothing to ask dpkg; the compiler will say what is missing.
command -v dpkg-query >/dev/null 2>&1 || exit 0

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if $check || [ "$(id -u)" != 0 ]; then
	echo "postino: missing Debian packages:$missing" >&2
	if [ "$(id -u)" = 0 ]; then
		echo "postino: install them with:" >&2
		echo "    apt-get install --no-install-recommends$missing" >&2
		echo "postino: (\`make run\` installs them itself)" >&2
	else
		echo "postino: install them as root with:" >&2
		echo "    apt-get install --no-install-recommends$missing" >&2
	fi
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# Packages such as dovecot-pop3d would start their daemons: tests start
# their own on loopback, so keep the system's services down while installing.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq </dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing </dev/null >/dev/null
