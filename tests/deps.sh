#!/bin/sh
# Install what Postino needs from Debian's packages, only what is missing.
#   tests/deps.sh build   what `make` and `make run` need
#   tests/deps.sh         that, plus everything `make check` runs
set -eu

build="gcc make libc6-dev libssl-dev libcrypt-dev openssl pkg-config
	libgmime-3.0-dev"
tests="libcmocka-dev python3 python3-pytest curl fetchmail mpop getmail6 perl
	libio-socket-ssl-perl dovecot-pop3d tmux clang libclang-rt-14-dev
	postfix dovecot-lmtpd"

want="$build"
[ "${1:-all}" = build ] || want="$build $tests"

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps: missing Debian packages:$missing" >&2
	echo "deps: run as root, or: sudo apt-get install$missing" >&2
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
