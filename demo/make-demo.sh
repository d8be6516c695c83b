#!/bin/sh
# Make the demo mail root for `make run` in BUILD/demo (once; `make clean` resets it):
# user "demo", password "demo", a Maildir with a few messages, a self-signed
# certificate, and a config that serves it on 127.0.0.1 and [::1], port 1110
# (plain and STLS) and port 1995 (implicit TLS).
set -eu
build=$1
top=$(pwd)
root="$top/$build/demo"
src="$top/demo"
port=${DEMO_PORT:-1110}
tport=${DEMO_TLS_PORT:-1995}

if [ -f "$root/postinod.conf" ]; then
	exit 0
fi
mkdir -p "$root/empty"
# As root the mail is read as "nobody", who must be able to search every
# directory down to the Maildir. A checkout under /root (mode 0700 on
# Debian) does not allow that: the demo's home then lives in
# /var/tmp/postino-demo-<checksum of this path> (recorded in
# $root/mail-home; `make clean` removes it), and so does the passwd-file,
# which the auth processes (postino-auth) must reach.
home="$root/home"
pwdir="$root"
if [ "$(id -u)" = 0 ]; then
	chmod 755 "$top/$build" "$root"
	if ! runuser -u nobody -- test -x "$root" 2>/dev/null; then
		sum=$(printf '%s' "$root" | cksum | cut -d' ' -f1)
		home=/var/tmp/postino-demo-$sum
		pwdir=$home
		rm -rf "$home"
		echo "demo: nobody cannot reach $root (a parent directory" \
		    "is not searchable); the demo's mail goes to $home" >&2
		printf '%s\n' "$home" > "$root/mail-home"
	fi
fi
mkdir -p "$home/demo/Maildir/new" "$home/demo/Maildir/cur" \
	"$home/demo/Maildir/tmp"
i=0
for m in "$src"/messages/*.eml; do
	i=$((i + 1))
	cp "$m" "$home/demo/Maildir/new/$((1700000000 + i)).M${i}P1.demo"
done
hash=$(printf 'demo\n' | "$top/$build/postino-passwd")
# A self-signed certificate so STLS and implicit TLS work out of the box.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
	-days 3650 -keyout "$root/key.pem" -out "$root/cert.pem" \
	</dev/null >/dev/null 2>&1
printf 'demo:%s::::%s/demo::\n' "$hash" "$home" > "$pwdir/passwd"

{
	echo "# Demo configuration written by demo/make-demo.sh"
	echo "listen = 127.0.0.1:$port"
	echo "listen_tls = 127.0.0.1:$tport"
	# Files in /proc report size 0: read it instead of testing -s.
	if grep -q . /proc/net/if_inet6 2>/dev/null; then
		echo "listen = [::1]:$port"
		echo "listen_tls = [::1]:$tport"
	fi
	echo "tls_cert = $root/cert.pem"
	echo "tls_key = $root/key.pem"
	echo "passwd_file = $pwdir/passwd"
	echo "mailbox = maildir:~/Maildir"
	echo "auth_fail_delay_ms = 500"
	echo "ready_file = $root/ready"
	if [ "$(id -u)" = 0 ]; then
		# Roles never run as root: mail is read as "nobody" here, and
		# the login role has a user of its own (postinod refuses one
		# that reads mail) in an empty directory only root can change.
		echo "login_user = postino"
		echo "auth_user = postino-auth"
		echo "login_chroot = /run/postino/empty"
		echo "mail_user = nobody"
	else
		echo "login_chroot = $root/empty"
	fi
} > "$root/postinod.conf"
if [ "$(id -u)" = 0 ]; then
	chmod 755 "$home"
	chown -R nobody:nogroup "$home/demo"
	id postino >/dev/null 2>&1 ||
		useradd --system --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin postino
	id postino-auth >/dev/null 2>&1 ||
		useradd --system --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin postino-auth
	chmod 600 "$root/key.pem"
	# Only the auth processes read the passwd-file.
	chgrp postino-auth "$pwdir/passwd"
	chmod 640 "$pwdir/passwd"
	install -d -o root -g root -m 755 /run/postino /run/postino/empty
fi
