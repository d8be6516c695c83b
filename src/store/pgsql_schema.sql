-- Postino's mail store in PostgreSQL (mailbox = pgsql:), schema version 2.
--
-- postinod creates this itself when postino_schema_version is missing (the
-- text below is compiled into it) and brings an older version up to date
-- with the steps beside it, pgsql_upgrade_N.sql (from N-1 to N). This file
-- always creates the newest version directly. A DBA who creates it by hand
-- runs it in one transaction:
--     psql -1 -v ON_ERROR_STOP=1 -f pgsql_schema.sql DBNAME
-- (and each upgrade step the same way, in order) and gives the postinod
-- role SELECT, INSERT, DELETE on postino_message, SELECT, INSERT, UPDATE on
-- postino_mailbox and USAGE on the sequences.

CREATE TABLE postino_schema_version (
	version		integer NOT NULL
);

-- UIDLs postinod gives: 'P' and this sequence in hex. A sequence never
-- goes back, so a UIDL is never reused, even after its row is deleted.
CREATE SEQUENCE postino_uidl_seq;

-- One row per message. mailbox is the expanded `mailbox = pgsql:TEMPLATE`
-- (the user name by default). pop3_size is what RETR sends before
-- byte-stuffing (every line end CRLF), computed once at delivery;
-- stored_size is octet_length(body). token: the delivery's token (LMTP
-- probes it after a crash), NULL for migrated mail. A migrated message
-- keeps its old UIDL, so uidl is text, unique per mailbox.
CREATE TABLE postino_message (
	id		bigserial PRIMARY KEY,
	mailbox		text NOT NULL CHECK (length(mailbox) BETWEEN 1 AND 1024),
	uidl		text NOT NULL
			DEFAULT 'P' || to_hex(nextval('postino_uidl_seq'))
			CHECK (uidl ~ '^[!-~]{1,70}$'),
	pop3_size	bigint NOT NULL CHECK (pop3_size >= 0),
	stored_size	bigint NOT NULL CHECK (stored_size >= 0),
	received	timestamptz NOT NULL DEFAULT now(),
	token		text,
	body		bytea NOT NULL,
	UNIQUE (mailbox, uidl),
	UNIQUE (mailbox, token)
);

-- Uncompressed out-of-line storage: substring() reads only the blocks
-- RETR asks for instead of decompressing the whole message each time.
ALTER TABLE postino_message ALTER COLUMN body SET STORAGE EXTERNAL;

-- STAT/LIST/UIDL: one index range scan, in delivery order.
CREATE INDEX postino_message_mailbox_id ON postino_message (mailbox, id);

-- Since version 2. One row per mailbox that has logged in while
-- login_delay was set: when, so RFC 2449 LOGIN-DELAY holds across every
-- instance (the other stores keep this in a stamp file).
CREATE TABLE postino_mailbox (
	mailbox		text PRIMARY KEY
			CHECK (length(mailbox) BETWEEN 1 AND 1024),
	last_login	timestamptz NOT NULL
);

INSERT INTO postino_schema_version (version) VALUES (2);
