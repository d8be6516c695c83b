"""Seed messages and real POP3 client drivers for test_clients.py.

Every driver downloads all messages of one mailbox with a real client
(fetchmail, mpop, getmail6, curl, Python poplib, Perl Net::POP3), either
keeping them on the server or deleting them, and returns what the client
delivered, one bytes object per message, *as the client delivered it*.
Each client's own, documented transformation of a message is undone or
accounted for in ``Client.normalise``/``Client.expect``; see the notes on
each driver.

Every driver speaks one of three transports (``Conn.transport``):
``plain`` (cleartext POP3), ``stls`` (cleartext, then STLS, RFC 2595: the
client must insist on it, never fall back) and ``implicit`` (TLS from the
first octet, RFC 8314).  Over TLS the client trusts exactly one CA file,
``Conn.ca``, and verifies the server's certificate and host name against
it; no driver ever turns verification off.  ``Client.transports`` lists
what a client can do (getmail6 has no STLS for POP3).  A client that
refuses the server raises ClientError; ``Client.refusal`` maps why
(``other-ca``: a certificate from a CA it does not trust, ``wrong-name``:
one for another host) to a regex for the client's own words about it.

Nothing here starts a server: the tests use the ``postinod`` fixture.
Passwords only ever travel in 0600 files, never on a command line or a
terminal; every subprocess gets stdin=/dev/null and a timeout.
"""

import os
import pwd
import re
import shutil
import ssl
import subprocess
import tempfile

TIMEOUT = 60                       # seconds, for every client process

USER = "alice"
PASSWORD = "s3cret-Pass_42"

# ---------------------------------------------------------------------------
# Seed messages (as a local delivery agent would store them: LF line ends)
# ---------------------------------------------------------------------------


def _big_body():
    """About 1 MB of 77-octet lines, some of which need dot-stuffing, so
    that stuffed lines fall on every alignment of the server's blocks."""
    lines = []
    i = 0
    total = 0
    while total < 1024 * 1024:
        if i % 97 == 0:
            line = b"." * (1 + i % 5) + b" dotted line %07d" % i
        elif i % 89 == 0:
            line = b"."
        elif i % 83 == 0:
            line = b""
        else:
            line = (b"%07d " % i) + bytes(
                0x21 + (i * 7 + k) % 94 for k in range(69))
        lines.append(line + b"\n")
        total += len(line) + 1
        i += 1
    return b"".join(lines)


def _hdr(n, subject, extra=b""):
    return (b"Return-Path: <sender@example.org>\n"
            b"From: Sender <sender@example.org>\n"
            b"To: Alice <alice@example.org>\n"
            b"Subject: " + subject + b"\n"
            b"Date: Mon, 01 Jan 2024 00:00:%02d +0000\n" % n +
            b"Message-ID: <seed-%d@postino.test>\n" % n + extra)


# name -> message bytes; names are used in failure messages only.
SEEDS = {
    "lf_only": _hdr(1, b"LF-only lines") +
    b"\nfirst line\nsecond line\n\nafter an empty line\n",

    "dot_start": _hdr(2, b"lines starting with a dot") +
    b"\n.leading dot\n..two leading dots\n. dot space\n.\\\nend\n",

    "dot_alone": _hdr(3, b"a line that is just a dot") +
    b"\nbefore\n.\nafter\n\n.\n",            # also *ends* with a lone '.'

    "no_final_newline": _hdr(4, b"no final newline") +
    b"\nfirst\nthe last line has no line end",

    "from_line": _hdr(5, b"From_ lines in the body") +
    b"\nFrom the start of a line\n\nFrom here on, an mbox "
    b"would be split\n>From already quoted once\nFrom: not a header\n",

    "big": _hdr(6, b"about one megabyte") + b"\n" + _big_body(),

    "utf8": _hdr(7, b"=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=",
                 b"MIME-Version: 1.0\n"
                 b"Content-Type: text/plain; charset=UTF-8\n"
                 b"Content-Transfer-Encoding: 8bit\n") +
    "\nGrüße aus Köln, naïve café — 日本語テキスト ✉\n"
    "\u00a0non-breaking space, € sign\n".encode("utf-8") +
    bytes(range(0x80, 0x100)) + b"\n",

    "empty_body": _hdr(8, b"empty body") + b"\n",
}

# Only in a Maildir: a message stored with CRLF line ends already (some
# LDAs do that); the server must not double the CRs.
MAILDIR_ONLY = {
    "crlf_stored": (_hdr(9, b"stored with CRLF") +
                    b"\nline one\nline two\n").replace(b"\n", b"\r\n"),
}


def seeds(store):
    s = dict(SEEDS)
    if store == "maildir":
        s.update(MAILDIR_ONLY)
    return s


def wire(msg):
    """What RETR must send for a stored message, before byte-stuffing:
    every LF not preceded by CR becomes CRLF, and a message whose last byte
    is not LF gets a CRLF (RFC 1939 sec. 3: a multi-line response is made
    of CRLF-terminated lines)."""
    out = re.sub(rb"(?<!\r)\n", b"\r\n", msg)
    if not out.endswith(b"\n"):
        out += b"\r\n"
    return out


def lf(data):
    return data.replace(b"\r\n", b"\n")


_FROM_RE = re.compile(rb"^(>*From )", re.M)


def mbox_bytes(msgs):
    """An mboxrd spool: From_ line, the message with every ^>*From line
    quoted with one more '>', a line end if it lacked one, an empty line."""
    out = []
    for i, m in enumerate(msgs):
        out.append(b"From sender@example.org Mon Jan  1 00:00:%02d 2024\n"
                   % i)
        body = _FROM_RE.sub(rb">\1", m)
        if not body.endswith(b"\n"):
            body += b"\n"
        out.append(body + b"\n")
    return b"".join(out)


_MSGID_RE = re.compile(rb"^Message-ID: <seed-(\d+)@postino\.test>\r?$",
                       re.M | re.I)


def msgid(data):
    m = _MSGID_RE.search(data)
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def me():
    return pwd.getpwuid(os.geteuid()).pw_name


def write_secret(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


def make_maildir(path):
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
    return path


def read_maildir(path):
    out = []
    for sub in ("new", "cur"):
        d = os.path.join(path, sub)
        for name in sorted(os.listdir(d)):
            with open(os.path.join(d, name), "rb") as f:
                out.append(f.read())
    return out


def read_dir(path):
    out = []
    for name in sorted(os.listdir(path)):
        with open(os.path.join(path, name), "rb") as f:
            out.append(f.read())
    return out


def delivered(work):
    """Whatever a driver delivered under its work directory so far (into
    work/Maildir or work/out), e.g. after it failed."""
    out = []
    md = os.path.join(work, "Maildir")
    if os.path.isdir(md):
        out += read_maildir(md)
    d = os.path.join(work, "out")
    if os.path.isdir(d):
        out += read_dir(d)
    return out


def client_env(home):
    """A clean environment: no user rc files, C locale."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": home,
        "LC_ALL": "C.UTF-8",
        "TMPDIR": home,
    }
    return env


def run(argv, env, what, **kw):
    """Run a client, stdin /dev/null, with a timeout; return the
    CompletedProcess (the caller checks the status it expects)."""
    return subprocess.run(argv, stdin=subprocess.DEVNULL,
                          capture_output=True, env=env, timeout=TIMEOUT,
                          **kw)


class ClientError(AssertionError):
    pass


def check_rc(cp, ok=(0,), what=""):
    if cp.returncode not in ok:
        raise ClientError(
            "%s exited %d\n--- argv: %r\n--- stdout:\n%s\n--- stderr:\n%s" % (
                what, cp.returncode, cp.args,
                cp.stdout.decode("utf-8", "replace")[-4000:],
                cp.stderr.decode("utf-8", "replace")[-4000:]))


# ---------------------------------------------------------------------------
# Clients.  Each: binary (for the skip), transports, fetch(conn, keep, work)
# -> list of delivered messages, normalise(delivered) -> bytes to compare,
# expect(original stored message) -> bytes to compare.
# ---------------------------------------------------------------------------

TRANSPORTS = ("plain", "stls", "implicit")


class Conn:
    """Where and how a client reaches the server: host, port, transport
    (one of TRANSPORTS) and, over TLS, the only CA file to trust."""

    def __init__(self, host, port, transport="plain", ca=None):
        assert transport in TRANSPORTS, transport
        assert transport == "plain" or ca, "TLS needs a CA file"
        self.host, self.port, self.transport, self.ca = (
            host, port, transport, ca)

    @property
    def tls(self):
        return self.transport != "plain"

    def __repr__(self):
        return "Conn(%s:%d %s)" % (self.host, self.port, self.transport)


class Client:
    name = None
    binary = None
    transports = TRANSPORTS
    refusal = {}        # {"other-ca"|"wrong-name": regex}, see above

    def available(self, transport="plain"):
        return self.binary is None or shutil.which(self.binary) is not None

    def expect(self, msg, transport="plain"):
        return wire(msg)

    def normalise(self, got):
        return got


class PoplibClient(Client):
    """Python poplib: retr() returns the lines without their line ends and
    un-stuffed; we rejoin them with CRLF.  The octet count poplib returns
    counts the bytes actually received (after un-stuffing), so it must equal
    the rejoined length: that proves every line ended in CRLF.  We also
    check that LIST's size is the RETR octet count.  TLS: a context from
    ssl.create_default_context(cafile=CA) (CERT_REQUIRED, host name
    checked), POP3.stls(context) (which first checks CAPA lists STLS) or
    POP3_SSL(context=...); a verification failure raises ClientError."""
    name = "poplib"
    refusal = {
        "other-ca": r"SSLCertVerificationError.*CERTIFICATE_VERIFY_FAILED.*"
                    r"unable to get local issuer certificate",
        "wrong-name": r"SSLCertVerificationError.*CERTIFICATE_VERIFY_FAILED"
                      r".*IP address mismatch"}

    def fetch(self, conn, keep, work):
        import poplib
        out = []
        ctx = None
        if conn.tls:
            ctx = ssl.create_default_context(cafile=conn.ca)
            assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
        try:
            if conn.transport == "implicit":
                p = poplib.POP3_SSL(conn.host, conn.port, timeout=TIMEOUT,
                                    context=ctx)
            else:
                p = poplib.POP3(conn.host, conn.port, timeout=TIMEOUT)
        except ssl.SSLError as e:
            raise ClientError("poplib: %r" % e) from e
        try:
            if conn.transport == "stls":
                try:
                    p.stls(context=ctx)
                except ssl.SSLError as e:
                    raise ClientError("poplib STLS: %r" % e) from e
            p.user(USER)
            p.pass_(PASSWORD)
            _, listing, _ = p.list()
            sizes = {}
            for entry in listing:
                n, sz = entry.split()
                sizes[int(n)] = int(sz)
            for n in sorted(sizes):
                _, lines, octets = p.retr(n)
                data = b"".join(line + b"\r\n" for line in lines)
                if octets != len(data):
                    raise ClientError(
                        "message %d: %d octets received but %d after "
                        "rejoining with CRLF: a line did not end in CRLF"
                        % (n, octets, len(data)))
                if sizes[n] != len(data):
                    raise ClientError(
                        "message %d: LIST says %d octets, RETR sent %d"
                        % (n, sizes[n], len(data)))
                out.append(data)
                if not keep:
                    p.dele(n)
            p.quit()
        finally:
            try:
                p.close()
            except OSError:         # a failed handshake left it closed
                pass
        return out


class CurlClient(Client):
    """curl pop3://: the LIST URL (pop3://host:port/) gives the message
    numbers, pop3://host:port/N sends RETR N and writes the message as
    received, CRLF line ends and all, un-stuffed, without the final ".".
    Deleting: ``-X 'DELE N' -I`` (a custom command with no body expected).
    Everything runs in one curl invocation (URLs separated by --next share
    the connection), so all DELEs are in one session that curl QUITs at the
    end.  Credentials come from a 0600 netrc file.  TLS: ``pop3://`` with
    ``--ssl-reqd`` (STLS, or fail) or ``pop3s://``, both ``--cacert CA``
    (curl verifies peer and host by default)."""
    name = "curl"
    binary = "curl"
    refusal = {     # 60: CURLE_PEER_FAILED_VERIFICATION
        "other-ca": r"curl: \(60\) SSL certificate problem: unable to get "
                    r"local issuer certificate",
        "wrong-name": r"curl: \(60\) SSL: no alternative certificate subject "
                      r"name matches"}

    def fetch(self, conn, keep, work):
        env = client_env(work)
        host, port = conn.host, conn.port
        netrc = write_secret(os.path.join(work, "netrc"),
                             "machine %s login %s password %s\n"
                             % (host, USER, PASSWORD))
        scheme = "pop3s" if conn.transport == "implicit" else "pop3"
        base = "%s://%s:%d/" % (scheme, host, port)
        common = ["--netrc-file", netrc, "--silent", "--show-error",
                  "--fail", "--max-time", str(TIMEOUT)]
        if conn.tls:
            common += ["--cacert", conn.ca]
        if conn.transport == "stls":
            common.append("--ssl-reqd")
        cp = run(["curl"] + common + [base], env, "curl LIST")
        check_rc(cp, what="curl LIST")
        nums = [int(line.split()[0]) for line in cp.stdout.splitlines()
                if line.strip()]
        outdir = os.path.join(work, "out")
        os.mkdir(outdir)
        argv = ["curl"]
        first = True
        for n in nums:
            if not first:
                argv.append("--next")
            first = False
            argv += common + ["-o", os.path.join(outdir, "%06d" % n),
                              base + str(n)]
        if not keep:
            for n in nums:
                argv += ["--next"] + common + ["-I", "-X", "DELE %d" % n,
                                               base]
        if nums:
            cp = run(argv, env, "curl RETR")
            check_rc(cp, what="curl RETR/DELE")
        return read_dir(outdir)


class PerlClient(Client):
    """Perl Net::POP3: ->list, ->get(n, $fh), ->delete(n), ->quit.
    Net::Cmd splits the data on /\\r?\\n/ and writes each line with "\\n",
    and un-stuffs leading dots: files have LF line ends.  TLS (through
    IO::Socket::SSL, Debian's libio-socket-ssl-perl): ``SSL => 1`` or
    ->starttls, with SSL_ca_file => CA and SSL_verify_mode =>
    SSL_VERIFY_PEER (Net::POP3 sets the host name to verify).  Over TLS
    the connection is a Net::POP3::_SSL, whose @ISA puts IO::Socket::SSL
    before Net::Cmd: its getline() wins, returning lines as received, so
    read_until_dot still un-stuffs them but the files keep CRLF line
    ends: we then expect exactly the wire form.  (libnet 3.14.)"""
    name = "perl"
    binary = "perl"
    refusal = {"other-ca": r"certificate verify failed",
               "wrong-name": r"hostname verification failed"}

    def available(self, transport="plain"):
        if shutil.which("perl") is None:
            return False
        if transport == "plain":
            return True
        return subprocess.run(
            ["perl", "-MNet::POP3", "-e", "exit(Net::POP3->can_ssl ? 0 : 1)"],
            stdin=subprocess.DEVNULL, capture_output=True,
            timeout=TIMEOUT).returncode == 0

    SCRIPT = r'''
use strict; use warnings; use Net::POP3;
my ($host, $port, $pwfile, $outdir, $keep, $transport, $ca) = @ARGV;
open(my $pf, '<', $pwfile) or die "password file: $!";
my $pw = <$pf>; chomp $pw; close $pf;
my %tls = $transport eq 'plain' ? () :
    (SSL_ca_file => $ca, SSL_verify_mode => 1);    # SSL_VERIFY_PEER
sub tls_error { no warnings 'once'; $IO::Socket::SSL::SSL_ERROR // '' }
my $pop = Net::POP3->new($host, Port => $port, Timeout => 60,
                         ($transport eq 'implicit' ? (SSL => 1, %tls) : ()))
    or die "connect: $@ " . tls_error() . "\n";
if ($transport eq 'stls') {
    $pop->starttls(%tls) or die "STLS failed: " . tls_error() . "\n";
}
defined($pop->login($ENV{POP_USER}, $pw)) or die "login failed: " . $pop->message;
my $list = $pop->list or die "LIST failed: " . $pop->message;
for my $n (sort { $a <=> $b } keys %$list) {
    open(my $fh, '>', sprintf("%s/%06d", $outdir, $n)) or die "open: $!";
    binmode $fh;
    $pop->get($n, $fh) or die "RETR $n failed: " . $pop->message;
    close $fh or die "close: $!";
    if (!$keep) { $pop->delete($n) or die "DELE $n failed: " . $pop->message; }
}
$pop->quit or die "QUIT failed: " . $pop->message;
'''

    def fetch(self, conn, keep, work):
        env = client_env(work)
        env["POP_USER"] = USER
        pw = write_secret(os.path.join(work, "password"), PASSWORD + "\n")
        outdir = os.path.join(work, "out")
        os.mkdir(outdir)
        script = os.path.join(work, "get.pl")
        with open(script, "w") as f:
            f.write(self.SCRIPT)
        cp = run(["perl", script, conn.host, str(conn.port), pw, outdir,
                  "1" if keep else "0", conn.transport, conn.ca or ""],
                 env, "perl")
        check_rc(cp, what="perl Net::POP3")
        return read_dir(outdir)

    def expect(self, msg, transport="plain"):
        if transport != "plain":
            return wire(msg)
        return lf(wire(msg))


class FetchmailClient(Client):
    """fetchmail with an MDA that stores stdin in a file per message.
    rcfile (0600): plaintext POP3 (``sslproto ''`` turns off STARTTLS),
    ``auth password``, ``fetchall`` (every message, seen or not: there is
    no UIDL state; fetchmail 6.4 uses RETR either way), ``keep`` /
    ``nokeep``, ``no rewrite`` (no address rewriting), and
    ``set invisible`` (no Received: header).  With an MDA, ``stripcr`` is
    on by default: the MDA gets LF line ends.  FETCHMAILHOME keeps the
    pid/id files in the work dir; FETCHMAILUSER makes the MDA run as us.
    TLS (fetchmail 6.4 semantics): ``sslproto 'tls1.2+'`` alone means
    mandatory STLS; with ``ssl`` it is implicit TLS; both with
    ``sslcertck`` (verify, or disconnect) and ``sslcertfile CA`` (which
    also keeps the system CA file out).  fetchmail matches the server's
    name against the certificate's DNS names only, never an IP address
    SAN ("Server CommonName mismatch: localhost != 127.0.0.1"), and we
    connect to 127.0.0.1 (localhost has two addresses, and the server's
    IPv4 and IPv6 ports differ): ``sslcommonname "localhost"`` names the
    host the certificate must be for; chain and name are still checked."""
    name = "fetchmail"
    binary = "fetchmail"
    refusal = {
        "other-ca": r"Server certificate verification error: unable to get "
                    r"local issuer certificate",
        "wrong-name": r"Server certificate verification error: hostname "
                      r"mismatch"}

    def fetch(self, conn, keep, work):
        host, port = conn.host, conn.port
        env = client_env(work)
        env["FETCHMAILHOME"] = work
        env["FETCHMAILUSER"] = me()
        outdir = os.path.join(work, "out")
        os.mkdir(outdir)
        mda = os.path.join(work, "mda.sh")
        with open(mda, "w") as f:
            f.write('#!/bin/sh\nset -e\nf=$(mktemp "%s/msg.XXXXXXXX")\n'
                    'exec cat > "$f"\n' % outdir)
        os.chmod(mda, 0o755)
        rc = write_secret(os.path.join(work, "fetchmailrc"), (
            'set no syslog\n'
            'set invisible\n'
            'set no bouncemail\n'
            'poll %s with protocol POP3 service %d timeout %d\n'
            '    auth password\n'
            '    user "%s" there with password "%s" is "%s" here\n'
            '%s'
            '    fetchall\n'
            '    %s\n'
            '    no rewrite\n'
            '    mda "%s"\n') % (host, port, TIMEOUT, USER, PASSWORD, me(),
                                 self.tls_lines(conn),
                                 "keep" if keep else "nokeep", mda))
        # As root, fetchmail's lock is /var/run/fetchmail.pid whatever
        # FETCHMAILHOME says: a lock of its own, so no other fetchmail on
        # the machine makes it refuse to run.
        cp = run(["fetchmail", "--fetchmailrc", rc, "--nodetach",
                  "--pidfile", os.path.join(work, "fetchmail.pid"),
                  "--verbose"], env, "fetchmail", cwd=work)
        check_rc(cp, what="fetchmail")
        return read_dir(outdir)

    @staticmethod
    def tls_lines(conn):
        if not conn.tls:
            return "    sslproto ''\n"
        return ("%s    sslproto 'tls1.2+'\n"
                "    sslcertck\n"
                "    sslcertfile \"%s\"\n"
                "    sslcommonname \"localhost\"\n") % (
                    "    ssl\n" if conn.transport == "implicit" else "",
                    conn.ca)

    def expect(self, msg, transport="plain"):
        return lf(wire(msg))


class MpopClient(Client):
    """mpop delivering into a Maildir.  Config (0600): ``tls off``,
    ``auth user`` (USER/PASS: mpop picks no cleartext method by itself
    without TLS), ``only_new off`` (every message, not only those missing
    from its UIDL file), ``keep on|off``, ``received_header off`` (no
    Received: header).  Maildir delivery converts CRLF to LF.  TLS:
    ``tls on``, ``tls_starttls on`` (STLS, mandatory) or ``off`` (implicit
    TLS), ``tls_trust_file CA`` (GnuTLS verifies the chain and the host;
    ``tls_certcheck`` stays at its default, on)."""
    name = "mpop"
    binary = "mpop"
    refusal = {
        "other-ca": r"TLS certificate verification failed: .*The "
                    r"certificate issuer is unknown",
        "wrong-name": r"TLS certificate verification failed: .*The name in "
                      r"the certificate does not match"}

    def fetch(self, conn, keep, work):
        host, port = conn.host, conn.port
        env = client_env(work)
        if conn.tls:
            tls = ("tls on\ntls_starttls %s\ntls_trust_file %s\n" % (
                "on" if conn.transport == "stls" else "off", conn.ca))
        else:
            tls = "tls off\n"
        md = make_maildir(os.path.join(work, "Maildir"))
        conf = write_secret(os.path.join(work, "mpoprc"), (
            "defaults\n"
            "timeout %d\n"
            "account default\n"
            "host %s\n"
            "port %d\n"
            "user %s\n"
            "password %s\n"
            "auth user\n"
            "%s"
            "delivery maildir %s\n"
            "uidls_file %s\n"
            "only_new off\n"
            "keep %s\n"
            "received_header off\n") % (
                TIMEOUT, host, port, USER, PASSWORD, tls, md,
                os.path.join(work, "uidls"), "on" if keep else "off"))
        cp = run(["mpop", "--file=" + conf, "--quiet", "default"], env,
                 "mpop")
        check_rc(cp, what="mpop")
        return read_maildir(md)

    def expect(self, msg, transport="plain"):
        return lf(wire(msg))


class GetmailClient(Client):
    """getmail6: SimplePOP3Retriever (plaintext), Maildir destination,
    ``read_all``, ``delete``, ``received = false``, ``delivered_to =
    false``.  getmail always prepends a ``Return-Path: <sender>`` header
    (the sender from the message's own Return-Path:, whose field it then
    removes); we seed every message with ``Return-Path:
    <sender@example.org>`` as its first header, so the only visible change
    is the line end.  getmail joins the lines of poplib's retr() with
    "\\n" and re-serialises the message with Python's email package.  As
    root getmail refuses to deliver unless ``user`` names a non-root
    account: we give the output Maildir to nobody then.  TLS:
    SimplePOP3SSLRetriever with ``ca_certs = CA`` (getmail then requires a
    verified chain and matches the host name itself); getmail6 6.18 has no
    STLS for POP3 (SimplePOP3Retriever is cleartext only)."""
    name = "getmail"
    binary = "getmail"
    transports = ("plain", "implicit")
    refusal = {     # the name is checked by getmail after the handshake
        "other-ca": r"CERTIFICATE_VERIFY_FAILED",
        "wrong-name": r"hostname '127\.0\.0\.1' doesn't match "
                      r"'mail\.example\.net'"}

    def fetch(self, conn, keep, work):
        assert conn.transport in self.transports, conn
        host, port = conn.host, conn.port
        env = client_env(work)
        md = make_maildir(os.path.join(work, "Maildir"))
        user_line = ""
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chmod(work, 0o755)
            for d in (md, md + "/tmp", md + "/new", md + "/cur"):
                os.chown(d, nobody.pw_uid, nobody.pw_gid)
            user_line = "user = nobody\n"
        gdir = os.path.join(work, "getmail")
        os.mkdir(gdir)
        rc = write_secret(os.path.join(work, "getmailrc"), (
            "[retriever]\n"
            "type = %s\n"
            "server = %s\n"
            "port = %d\n"
            "username = %s\n"
            "password = %s\n"
            "timeout = %d\n"
            "%s"
            "\n[destination]\n"
            "type = Maildir\n"
            "path = %s/\n"
            "%s"
            "\n[options]\n"
            "verbose = 0\n"
            "read_all = true\n"
            "delete = %s\n"
            "received = false\n"
            "delivered_to = false\n") % (
                "SimplePOP3SSLRetriever" if conn.tls
                else "SimplePOP3Retriever",
                host, port, USER, PASSWORD, TIMEOUT,
                "ca_certs = %s\n" % conn.ca if conn.tls else "",
                md, user_line,
                "true" if not keep else "false"))
        cp = run(["getmail", "--rcfile=" + rc, "--getmaildir=" + gdir],
                 env, "getmail")
        check_rc(cp, what="getmail")
        return read_maildir(md)

    def expect(self, msg, transport="plain"):
        return lf(wire(msg))


CLIENTS = {c.name: c for c in (FetchmailClient(), MpopClient(),
                               GetmailClient(), CurlClient(), PoplibClient(),
                               PerlClient())}


def compare(client, store, got, transport="plain"):
    """Every seed message arrived exactly once, byte for byte after the
    client's own transformation; returns a list of problems (empty = ok)."""
    want = {msgid(m): (name, client.expect(m, transport))
            for name, m in seeds(store).items()}
    problems = []
    seen = {}
    for data in got:
        norm = client.normalise(data)
        mid = msgid(norm)
        if mid not in want:
            problems.append("a delivered message has no known Message-ID: "
                            "%r..." % norm[:200])
            continue
        seen[mid] = seen.get(mid, 0) + 1
        name, exp = want[mid]
        if norm != exp:
            problems.append(describe_diff(name, exp, norm))
    for mid, (name, _) in want.items():
        if seen.get(mid, 0) != 1:
            problems.append("%s: arrived %d times" % (name, seen.get(mid, 0)))
    return problems


def describe_diff(name, exp, got):
    i = 0
    n = min(len(exp), len(got))
    while i < n and exp[i] == got[i]:
        i += 1
    lo = max(0, i - 60)
    return ("%s: differs at octet %d (expected %d octets, got %d)\n"
            "   expected ...%r...\n   got      ...%r..." % (
                name, i, len(exp), len(got), exp[lo:i + 60], got[lo:i + 60]))



# ---------------------------------------------------------------------------
# TOP through real clients
# ---------------------------------------------------------------------------

TOP_COUNTS = (0, 1, 3, 99999999)


def top_expected(msg, nlines):
    """RFC 1939 TOP: the header, the empty line, the first nlines lines of
    the body, every line CRLF-terminated (before byte-stuffing)."""
    w = wire(msg)
    head, sep, body = w.partition(b"\r\n\r\n")
    if not sep:
        return w
    lines = body.split(b"\r\n")[:-1]
    return head + b"\r\n\r\n" + b"".join(
        line + b"\r\n" for line in lines[:nlines])


def curl_top(host, port, nums, counts, work):
    """{(message number, count): bytes} from ``curl -X 'TOP n k'``, all in
    one connection; curl writes the multi-line response un-stuffed and
    CRLF-terminated, like RETR."""
    env = client_env(work)
    netrc = write_secret(os.path.join(work, "netrc"),
                         "machine %s login %s password %s\n"
                         % (host, USER, PASSWORD))
    base = "pop3://%s:%d/" % (host, port)
    common = ["--netrc-file", netrc, "--silent", "--show-error", "--fail",
              "--max-time", str(TIMEOUT)]
    outdir = os.path.join(work, "top")
    os.mkdir(outdir)
    argv = ["curl"]
    keys = []
    for n in nums:
        for k in counts:
            if keys:
                argv.append("--next")
            keys.append((n, k))
            argv += common + ["-o", os.path.join(outdir, "%d.%d" % (n, k)),
                              "-X", "TOP %d %d" % (n, k), base]
    cp = run(argv, env, "curl TOP")
    check_rc(cp, what="curl TOP")
    out = {}
    for n, k in keys:
        with open(os.path.join(outdir, "%d.%d" % (n, k)), "rb") as f:
            out[(n, k)] = f.read()
    return out


PERL_TOP = r"""
use strict; use warnings; use Net::POP3;
my ($host, $port, $pwfile, $outdir, @counts) = @ARGV;
open(my $pf, '<', $pwfile) or die "password file: $!";
my $pw = <$pf>; chomp $pw; close $pf;
my $pop = Net::POP3->new($host, Port => $port, Timeout => 60)
    or die "connect: $@";
defined($pop->login($ENV{POP_USER}, $pw)) or die "login failed: " . $pop->message;
my $list = $pop->list or die "LIST failed: " . $pop->message;
for my $n (sort { $a <=> $b } keys %$list) {
    for my $k (@counts) {
        my $lines = $pop->top($n, $k) or die "TOP $n $k failed: " . $pop->message;
        open(my $fh, '>', "$outdir/$n.$k") or die "open: $!";
        binmode $fh;
        print $fh @$lines;
        close $fh or die "close: $!";
    }
}
$pop->quit or die "QUIT failed: " . $pop->message;
"""


def perl_top(host, port, counts, work):
    """{(message number, count): bytes} from Net::POP3 ->top(n, k); lines
    end in LF (see PerlClient)."""
    env = client_env(work)
    env["POP_USER"] = USER
    pw = write_secret(os.path.join(work, "password"), PASSWORD + "\n")
    outdir = os.path.join(work, "ptop")
    os.mkdir(outdir)
    script = os.path.join(work, "top.pl")
    with open(script, "w") as f:
        f.write(PERL_TOP)
    cp = run(["perl", script, host, str(port), pw, outdir] +
             [str(k) for k in counts], env, "perl top")
    check_rc(cp, what="perl Net::POP3 top")
    out = {}
    for name in os.listdir(outdir):
        n, k = name.split(".")
        with open(os.path.join(outdir, name), "rb") as f:
            out[(int(n), int(k))] = f.read()
    return out

def tempdir():
    return tempfile.mkdtemp(prefix="postino-client-")
