-- Postino's mail store in PostgreSQL: schema version 1 to 2.
--
-- postinod runs this itself (the text is compiled into it) when it finds
-- version 1, in one transaction with the check, under the schema's
-- advisory lock. A DBA who upgrades by hand runs it in one transaction:
--     psql -1 -v ON_ERROR_STOP=1 -f pgsql_upgrade_2.sql DBNAME
-- pgsql_schema.sql creates the same tables directly.

-- The time of a mailbox's last login, for login_delay (pgsql_schema.sql).
CREATE TABLE postino_mailbox (
	mailbox		text PRIMARY KEY
			CHECK (length(mailbox) BETWEEN 1 AND 1024),
	last_login	timestamptz NOT NULL
);

UPDATE postino_schema_version SET version = 2;
