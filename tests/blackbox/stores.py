"""The mail stores the protocol tests run against, one interface each
(conftest.py's ``store`` fixture: maildir, mbox, pgsql):

    .name                         "maildir", "mbox" or "pgsql"
    .config                       postinod keys: mailbox = ..., and
                                  for pgsql pgsql_conninfo and its password file
    .deliver(user, data)          put a message in as an MTA would
                                  (after the ones already there)
    .messages(user) -> [bytes]    what the store holds, in mailbox order,
                                  as delivered
"""
import os
import re
import subprocess

SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                      "src", "store", "pgsql_schema.sql")
FROM_LINE = b"From MAILER-DAEMON Thu Jan  1 00:00:00 2026\n"
FROM_RE = re.compile(rb"^(>*From )", re.M)


class MaildirStore:
    name = "maildir"

    def __init__(self, root):
        self.root = root
        self.config = {"mailbox": "maildir:~/Maildir"}

    def deliver(self, user, data):
        self.root.deliver_maildir(user, data)

    def messages(self, user):
        files = self.root.maildir_files(user)
        return [files[k][1] for k in sorted(files)]


class MboxStore:
    """mboxrd (postinod's default): ">*From " gains a '>' when stored."""
    name = "mbox"

    def __init__(self, root):
        self.root = root
        self.config = {"mailbox": root.mbox_spec}

    def deliver(self, user, data):
        if data and not data.endswith(b"\n"):
            data += b"\n"
        self.root.append_mbox(user, FROM_LINE + FROM_RE.sub(rb">\1", data) +
                              b"\n")

    def messages(self, user):
        try:
            raw = self.root.read_mbox(user)
        except FileNotFoundError:
            return []
        out = []
        for part in re.split(rb"(?:^|(?<=\n))From [^\n]*\n", raw)[1:]:
            # The separating empty line is the mbox's, not the message's.
            part = part[:-1] if part.endswith(b"\n") else part
            out.append(re.sub(rb"^>(>*From )", rb"\1", part, flags=re.M))
        return out


class PgsqlStore:
    """A fresh schema, loaded from the shipped file as a DBA would."""
    name = "pgsql"

    def __init__(self, pg):
        self.pg = pg
        self.config = {"mailbox": "pgsql:", "pgsql_conninfo": pg.conninfo,
                       "pgsql_password_file": pg.password_file}
        with open(SCHEMA) as f:
            self.sql("DROP TABLE IF EXISTS postino_message, postino_mailbox, "
                     "postino_schema_version; DROP SEQUENCE IF EXISTS "
                     "postino_uidl_seq;\n" + f.read())

    def sql(self, text):
        """Through stdin (a message may exceed one argument's limit)."""
        argv = [os.path.join(self.pg.bin, "psql"), "-X", "-q", "-A", "-t",
                "-1", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                str(self.pg.port), "-U", "postgres", "-d", "postgres"]
        env = dict(os.environ, PGPASSWORD=self.pg.password)
        r = subprocess.run(argv, input=text.encode(), capture_output=True,
                           timeout=120, env=env)
        assert r.returncode == 0, r.stderr.decode()
        return r.stdout.decode()

    def deliver(self, user, data):
        pop3 = len(data) + data.count(b"\n") - data.count(b"\r\n")
        if data and not data.endswith(b"\n"):
            pop3 += 2
        self.sql("INSERT INTO postino_message (mailbox, pop3_size, "
                 "stored_size, body) VALUES ('%s', %d, %d, '\\x%s')"
                 % (user, pop3, len(data), data.hex()))

    def messages(self, user):
        out = self.sql("SELECT encode(body, 'hex') FROM postino_message "
                       "WHERE mailbox = '%s' ORDER BY id" % user)
        return [bytes.fromhex(ln) for ln in out.splitlines()]

    def cleanup(self):
        self.sql("DROP TABLE IF EXISTS postino_message, postino_mailbox, "
                 "postino_schema_version; DROP SEQUENCE IF EXISTS "
                 "postino_uidl_seq")
