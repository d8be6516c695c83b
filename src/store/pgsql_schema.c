/*
 * The schema postinod creates (store_pgsql.h), compiled in from the very
 * file shipped for DBAs, src/store/pgsql_schema.sql, so the two cannot
 * differ. The assembler includes it (paths are from the top of the tree,
 * where make runs the compiler); a NUL ends it as a C string.
 */
__asm__(
	"	.section .rodata\n"
	"	.global store_pgsql_schema\n"
	"	.type store_pgsql_schema, @object\n"
	"store_pgsql_schema:\n"
	"	.incbin \"src/store/pgsql_schema.sql\"\n"
	"	.byte 0\n"
	"	.size store_pgsql_schema, . - store_pgsql_schema\n"
	"	.previous\n"
);
