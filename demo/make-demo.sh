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

if [ -f "$root/postinod.conf" ]; then
	exit 0
fi
mkdir -p "$root/home/demo/Maildir/new" "$root/home/demo/Maildir/cur" \
	"$root/home/demo/Maildir/tmp" "$root/empty"
i=0
for m in "$src"/messages/*.eml; do
	i=$((i + 1))
	cp "$m" "$root/home/demo/Maildir/new/$((1700000000 + i)).M${i}P1.demo"
done
hash=$(printf 'demo\n' | "$top/$build/postino-passwd")
# A self-signed certificate so STLS and implicit TLS work out of the box.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
	-days 3650 -keyout "$root/key.pem" -out "$root/cert.pem" \
	</dev/null >/dev/null 2>&1
printf 'demo:%s::::%s/home/demo::\n' "$hash" "$root" > "$root/passwd"

{
	echo "# Demo configuration written by demo/make-demo.sh"
	echo "listen = 127.0.0.1:1110"
	echo "listen_tls = 127.0.0.1:1995"
	# Files in /proc report size 0: read it instead of testing -s.
	if grep -q . /proc/net/if_inet6 2>/dev/null; then
		echo "listen = [::1]:1110"
		echo "listen_tls = [::1]:1995"
	fi
	echo "tls_cert = $root/cert.pem"
	echo "tls_key = $root/key.pem"
	echo "passwd_file = $root/passwd"
	echo "mailbox = maildir:~/Maildir"
	echo "auth_fail_delay_ms = 500"
	if [ "$(id -u)" = 0 ]; then
		# Roles never run as root: mail is read as "nobody" here, and
		# the login role has a user of its own (postinod refuses one
		# that reads mail) in an empty directory only root can change.
		echo "login_user = postino"
		echo "login_chroot = /run/postino/empty"
		echo "mail_user = nobody"
	else
		echo "login_chroot = $root/empty"
	fi
} > "$root/postinod.conf"
if [ "$(id -u)" = 0 ]; then
	chmod 755 "$top/$build" "$root" "$root/home"
	chown -R nobody:nogroup "$root/home/demo"
	chmod 600 "$root/passwd" "$root/key.pem"
	id postino >/dev/null 2>&1 ||
		useradd --system --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin postino
	install -d -o root -g root -m 755 /run/postino /run/postino/empty
fi
