/*
 * The schema postinod creates and the steps that upgrade an older one
 * (store_pgsql.h), compiled in from the very files shipped for DBAs,
 * src/store/pgsql_schema.sql and pgsql_upgrade_N.sql, so the two cannot
 * differ. The assembler includes them (paths are from the top of the
 * tree, where make runs the compiler); a NUL ends each as a C string.
 */
#define SQL_TEXT(sym, file)						\
	"	.global " #sym "\n"					\
	"	.type " #sym ", @object\n"				\
	#sym ":\n"							\
	"	.incbin \"src/store/" file "\"\n"			\
	"	.byte 0\n"						\
	"	.size " #sym ", . - " #sym "\n"

__asm__(
	"	.section .rodata\n"
	SQL_TEXT(store_pgsql_schema, "pgsql_schema.sql")
	SQL_TEXT(store_pgsql_upgrade_2, "pgsql_upgrade_2.sql")
	"	.previous\n"
);
