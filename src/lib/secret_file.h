/*
 * A secret kept in a file of its own (a database password): never on a
 * command line or in a config file that postinod -t prints.
 */
#ifndef POSTINO_SECRET_FILE_H
#define POSTINO_SECRET_FILE_H

#include <stddef.h>

/*
 * The first line of path, without its line end, into buf (size octets,
 * NUL included). path must be a regular file (no symlink) of less than
 * size octets; one readable by group or others is used but logged as
 * event=<what>-open. 0, or -1 with err naming what and path (never the
 * contents).
 */
int secret_file_read(const char *what, const char *path, char *buf,
    size_t size, char *err);

#endif
