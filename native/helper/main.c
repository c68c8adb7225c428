/* berth-helper: conmon and runc in one small program. See README.md.
 *
 *   berth-helper run BUNDLE_DIR
 *   berth-helper exec BUNDLE_DIR EXEC_SPEC_FILE
 *   berth-helper version
 *
 * The command forks a detached helper (own session, stdio on /dev/null) and returns once
 * that helper is ready: exit 0 when it is serving its ctl socket (the container runs, waits
 * for "start", or already failed and wrote its exit file), exit 1 with a message on
 * stderr when it could not get that far. */
#define _GNU_SOURCE
#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void ready_send(int *ready_fd, const char *line)
{
	if (*ready_fd < 0)
		return;
	(void)write_all(*ready_fd, line, strlen(line));
	close(*ready_fd);
	*ready_fd = -1;
}

/*
 * A run or exec that fails before its process exists still leaves an exit file (when
 * it knows where) with `code` and the reason, and tells the launcher through the ready
 * pipe. Returns 1, the launcher's exit status for this case.
 */
int report_early_failure(const char *exit_path, int code, const struct failure *f, int *ready_fd)
{
	if (exit_path) {
		struct buf text = {0};
		char finished[40], head[96];
		format_rfc3339nano(finished);
		snprintf(head, sizeof head, "code %d\nsignal 0\nfinished %s\nerror ", code, finished);
		buf_append(&text, head, strlen(head));
		percent_escape(f->msg, &text);
		buf_append(&text, "\n", 2);
		struct failure ignored;
		atomic_write_file(exit_path, text.data, &ignored);
		buf_free(&text);
	}
	char line[1100];
	snprintf(line, sizeof line, "error %s\n", f->msg);
	ready_send(ready_fd, line);
	return 1;
}

static int usage(void)
{
	fprintf(stderr, "usage: berth-helper run BUNDLE_DIR\n"
			"       berth-helper exec BUNDLE_DIR EXEC_SPEC_FILE\n"
			"       berth-helper version\n");
	return 2;
}

/* Waits for the detached helper's one-line verdict. */
static int wait_until_ready(int ready_fd)
{
	char line[1200];
	size_t len = 0;
	for (;;) {
		ssize_t n = read(ready_fd, line + len, sizeof line - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == sizeof line - 1)
			break;
	}
	line[len] = '\0';
	if (strncmp(line, "ok\n", 3) == 0)
		return 0;
	if (strncmp(line, "error ", 6) == 0) {
		fprintf(stderr, "berth-helper: %s", line + 6);
		return 1;
	}
	fprintf(stderr, "berth-helper: the helper exited before it was ready\n");
	return 1;
}

static int detach_stdio(void)
{
	int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null_fd < 0)
		return -1;
	for (int fd = 0; fd < 3; fd++)
		if (dup2(null_fd, fd) < 0)
			return -1;
	if (null_fd > 2)
		close(null_fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "version") == 0) {
		printf("berth-helper protocol %d\n", HELPER_PROTOCOL_VERSION);
		return 0;
	}
	int is_run = argc == 3 && strcmp(argv[1], "run") == 0;
	int is_exec = argc == 4 && strcmp(argv[1], "exec") == 0;
	if (!is_run && !is_exec)
		return usage();

	/* No pipe back to a daemon may kill us when the daemon goes away. */
	signal(SIGPIPE, SIG_IGN);
	if (close_fds_except(NULL, 0) < 0) {
		perror("berth-helper: /proc/self/fd");
		return 1;
	}
	char exec_spec[PATH_MAX];
	if (is_exec && !realpath(argv[3], exec_spec)) {
		fprintf(stderr, "berth-helper: %s: %s\n", argv[3], strerror(errno));
		return 1;
	}
	/* Every bundle file is then a short relative path (unix socket paths are limited). */
	if (chdir(argv[2]) < 0) {
		fprintf(stderr, "berth-helper: bundle %s: %s\n", argv[2], strerror(errno));
		return 1;
	}

	int ready[2];
	if (pipe2(ready, O_CLOEXEC) < 0) {
		perror("berth-helper: pipe");
		return 1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("berth-helper: fork");
		return 1;
	}
	if (pid > 0) {
		close(ready[1]);
		return wait_until_ready(ready[0]);
	}
	close(ready[0]);
	if (setsid() < 0 || detach_stdio() < 0) {
		char line[256];
		snprintf(line, sizeof line, "error detach: %s\n", strerror(errno));
		ready_send(&ready[1], line);
		_exit(1);
	}
	_exit(is_run ? run_container(ready[1]) : exec_in_container(exec_spec, ready[1]));
}
