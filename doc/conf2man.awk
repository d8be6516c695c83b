# doc/conf2man.awk: postinod.conf(5) from etc/postinod.conf, so the manual
# is the commented file itself and cannot drift from it (the file is
# checked against the configuration table by tests/blackbox/test_docs.py).
#   awk -v version=X -f doc/conf2man.awk etc/postinod.conf > postinod.conf.5
# A paragraph of "# text" lines followed by "#key = value" lines is one
# entry; the first paragraph (before the first key) is the description.
function esc(s) {
	gsub(/\\/, "\\e", s)
	if (s ~ /^[.']/)
		s = "\\&" s
	return s
}
function flush(   i, k) {
	if (nkeys == 0) {
		for (i = 1; i <= ntext; i++)
			intro = intro esc(text[i]) "\n"
	} else {
		first = 1
		for (k = 1; k <= nkeys; k++) {
			if (keys[k] in done_in_entry)
				continue
			done_in_entry[keys[k]] = 1
			body = body (first ? ".TP\n" : ".TQ\n") ".B " keys[k] "\n"
			first = 0
		}
		for (i = 1; i <= ntext; i++)
			body = body esc(text[i]) "\n"
		body = body ".IP\n.EX\n"
		for (i = 1; i <= nex; i++)
			body = body esc(ex[i]) "\n"
		body = body ".EE\n"
	}
	ntext = nkeys = nex = 0
	delete done_in_entry
}
/^[ \t]*$/ { flush(); next }
/^#?[a-z_][a-z0-9_]* *=/ {
	line = $0
	sub(/^#/, "", line)
	key = line
	sub(/ *=.*/, "", key)
	keys[++nkeys] = key
	ex[++nex] = line
	next
}
/^#/ {
	line = $0
	sub(/^# ?/, "", line)
	text[++ntext] = line
	next
}
END {
	flush()
	print ".\\\" Generated from etc/postinod.conf by doc/conf2man.awk: edit those."
	print ".TH POSTINOD.CONF 5 \"\" \"Postino " version "\" \"File Formats\""
	print ".SH NAME"
	print "postinod.conf \\- configuration file of the postinod POP3 server"
	print ".SH SYNOPSIS"
	print ".I /etc/postino/postinod.conf"
	print ".SH DESCRIPTION"
	print ".nh"
	print ".ad l"
	printf "%s", intro
	print ".PP"
	print "The keys, with their defaults and bounds:"
	print ".PD 1"
	printf "%s", body
	print ".SH FILES"
	print ".TP"
	print ".I /etc/postino/postinod.conf"
	print "The default configuration file (\\fBpostinod \\-c\\fR names another)."
	print ".TP"
	print ".I /etc/postino/passwd"
	print "The default passwd-file."
	print ".SH SEE ALSO"
	print ".BR postinod (8),"
	print ".BR postino-passwd (1)"
}
