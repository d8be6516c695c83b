#!/bin/sh
# `make run`: serve the demo made by demo/make-demo.sh in the foreground.
# The banner comes only once postinod has bound its ports (its ready file),
# names only the tools this machine has, and Ctrl-C stops the server.
set -eu
build=$1
root="$(pwd)/$build/demo"
conf="$root/postinod.conf"
ready="$root/ready"
postinod="$(pwd)/$build/postinod"

if ! grep -q '^ready_file' "$conf"; then
	echo "ready_file = $ready" >> "$conf"	# a demo from an older make
fi
# Refuses a demo the mail uid cannot reach, with the reason and the path.
if ! "$postinod" -t -c "$conf" >/dev/null; then
	echo "make run: the demo configuration is not usable (above);" \
	    "make clean && make run makes a new one" >&2
	exit 1
fi
rm -f "$ready"
"$postinod" -f -c "$conf" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || :' INT TERM HUP

i=0
while [ ! -s "$ready" ]; do
	if ! kill -0 "$pid" 2>/dev/null || [ "$i" -ge 300 ]; then
		kill -TERM "$pid" 2>/dev/null || :
		wait "$pid" || :
		echo "make run: postinod did not start (its reason is above)" >&2
		exit 1
	fi
	sleep 0.1
	i=$((i + 1))
done

have() { command -v "$1" >/dev/null 2>&1; }
# The ports as bound (the ready file: "ADDR:PORT", "tls ADDR:PORT").
port=$(sed -n '/^tls /d; s/.*://p' "$ready" | head -n 1)
tport=$(sed -n 's/^tls .*://p' "$ready" | head -n 1)
cert="$build/demo/cert.pem"
{
	echo
	echo "postinod: serving user demo (password demo) on 127.0.0.1 and [::1]:"
	echo "  port $port (plain, STLS) and $tport (implicit TLS, self-signed certificate)"
	echo "  postino:  POSTINO_PASSWORD=demo $build/postino list --cafile $cert pop3s://demo@127.0.0.1:$tport"
	if have curl; then
		echo "  curl:     curl -v pop3://demo:demo@127.0.0.1:$port/1"
		echo "            curl --cacert $cert pop3s://demo:demo@127.0.0.1:$tport/1"
	fi
	echo "  openssl:  openssl s_client -quiet -starttls pop3 -connect 127.0.0.1:$port"
	echo "            openssl s_client -quiet -connect 127.0.0.1:$tport"
	echo "            then: USER demo / PASS demo / LIST / RETR 1 / QUIT"
	if have telnet; then
		echo "  telnet:   telnet 127.0.0.1 $port   (then the same commands)"
	elif have nc; then
		echo "  nc:       nc -C 127.0.0.1 $port   (then the same commands)"
	fi
	echo "  a client: POP3 server localhost, port $tport (SSL/TLS) or $port (STARTTLS),"
	echo "            user demo, password demo (accept the self-signed certificate)"
	echo "  Ctrl-C stops it; make clean resets the demo mailbox."
}

# wait returns early when a signal runs the trap: wait again until the
# server itself has exited, and pass its status on.
while :; do
	status=0
	wait "$pid" || status=$?
	kill -0 "$pid" 2>/dev/null || break
done
trap - INT TERM HUP
exit "$status"
