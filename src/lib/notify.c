#include "notify.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static char notify_path[NOTIFY_PATH_MAX + 1];

void
notify_init(void)
{
	const char *p = getenv("NOTIFY_SOCKET");
	size_t len;

	notify_path[0] = '\0';
	if (p != NULL) {
		len = strlen(p);
		if (len >= 2 && len <= NOTIFY_PATH_MAX &&
		    (p[0] == '/' || p[0] == '@'))
			memcpy(notify_path, p, len + 1);
	}
	unsetenv("NOTIFY_SOCKET");
}

int
notify_send(const char *state)
{
	struct sockaddr_un sun;
	size_t len = strlen(notify_path), n = strlen(state);
	ssize_t sent;
	int fd;

	if (len == 0)
		return 0;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, notify_path, len);
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	sent = sendto(fd, state, n, MSG_NOSIGNAL, (struct sockaddr *)&sun,
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
	if (close(fd) < 0 || sent != (ssize_t)n)
		return -1;
	return 0;
}
