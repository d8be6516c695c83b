/*
 * Logging: stderr in the foreground, syslog (LOG_MAIL) otherwise.
 * Every line is "key=value ..." where it describes an event; callers pass
 * client strings through str_sanitize() first.
 */
#ifndef POSTINO_LOG_H
#define POSTINO_LOG_H

#include <stdbool.h>

/* ident: program/role name shown in each line ("postinod/login"). */
void log_init(const char *ident, bool to_stderr, bool debug);
void log_set_ident(const char *ident);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));  /* adds strerror(errno) */
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Startup errors and broken invariants only. */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

bool log_debug_enabled(void);

#endif
