/*
 * The systemd readiness protocol (sd_notify(3), Type=notify), without
 * libsystemd: one datagram of "KEY=VALUE\n" lines to the AF_UNIX socket
 * named by $NOTIFY_SOCKET (a path, or '@' for the abstract namespace).
 */
#ifndef POSTINO_NOTIFY_H
#define POSTINO_NOTIFY_H

/* Maximum length of $NOTIFY_SOCKET: sizeof(sun_path) less the NUL. */
#define NOTIFY_PATH_MAX	107

/*
 * Take $NOTIFY_SOCKET and remove it from the environment, so processes
 * started later (the roles) never talk to the service manager. Ignored
 * when unset, empty, too long or neither a path nor '@'.
 */
void notify_init(void);

/* Send state ("READY=1"); 0 when sent or nothing to send to, else -1. */
int notify_send(const char *state);

#endif
