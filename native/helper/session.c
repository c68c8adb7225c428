/* The relay loop: container output goes to the json log and to attached clients,
 * client input goes to the container's stdin, one-line commands arrive on the control
 * socket. Everything is non-blocking and driven by one poll(); a client that cannot
 * keep up is dropped rather than ever stalling the container. */
#define _GNU_SOURCE
#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Per client: bursts fit, a stuck client is cut off (the log keeps everything). */
#define CLIENT_BUFFER_LIMIT (4u << 20)
#define STDIN_BUFFER_LIMIT (1u << 20)
#define MAX_COMMAND_LINE 256
#define MAX_CLIENTS 64
#define FINAL_FLUSH_MS 2000
#define FRAME_HEADER 5

enum container_state { STATE_CREATED, STATE_RUNNING, STATE_EXITED };

struct client {
	int fd;
	int has_command, attached, wants_stdin, read_closed, close_when_flushed;
	struct buf in, out;
};

struct session {
	struct session_config cfg;
	int listen_fd, signal_fd;
	int out_fds[3]; /* by stream number: 1 stdout (or the pty), 2 stderr */
	int stdin_fd, pty_master;
	int stdin_close_pending;
	struct buf stdin_buf;
	struct client clients[MAX_CLIENTS];
	size_t nclients;
	pid_t pid;
	enum container_state state;
	int wait_status;
	char *error;
};

/* Signals sent to the helper itself are meant for the container. */
static const int forwarded_signals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};

static int listen_on(const char *path, struct failure *f)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof addr.sun_path)
		return fail(f, "ctl socket path %s is longer than %zu bytes", path, sizeof addr.sun_path - 1);
	strcpy(addr.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return fail_errno(f, errno, "socket");
	if (unlink(path) < 0 && errno != ENOENT) {
		close(fd);
		return fail_errno(f, errno, "remove stale %s", path);
	}
	/* Only root (the daemon) may talk to the helper. */
	mode_t old_mask = umask(077);
	int rc = bind(fd, (struct sockaddr *)&addr, sizeof addr);
	umask(old_mask);
	if (rc < 0 || listen(fd, 16) < 0) {
		int err = errno;
		close(fd);
		return fail_errno(f, err, "listen on %s", path);
	}
	return fd;
}

struct session *session_create(const struct session_config *cfg, struct failure *f)
{
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	for (size_t i = 0; i < sizeof forwarded_signals / sizeof *forwarded_signals; i++)
		sigaddset(&mask, forwarded_signals[i]);
	/* Blocked before the child exists, so its SIGCHLD cannot be missed. */
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
		fail_errno(f, errno, "sigprocmask");
		return NULL;
	}
	int signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (signal_fd < 0) {
		fail_errno(f, errno, "signalfd");
		return NULL;
	}
	int listen_fd = listen_on(cfg->ctl_path, f);
	if (listen_fd < 0) {
		close(signal_fd);
		return NULL;
	}
	struct session *s = xmalloc(sizeof *s);
	memset(s, 0, sizeof *s);
	s->cfg = *cfg;
	s->listen_fd = listen_fd;
	s->signal_fd = signal_fd;
	s->out_fds[0] = s->out_fds[1] = s->out_fds[2] = -1;
	s->stdin_fd = s->pty_master = -1;
	s->pid = -1;
	return s;
}

int session_listen_fd(const struct session *s)
{
	return s->listen_fd;
}

void *session_launch(struct session *s)
{
	return s->cfg.launch;
}

void session_set_stdio(struct session *s, int out_fd, int err_fd, int in_fd, int pty_master)
{
	s->out_fds[1] = pty_master >= 0 ? pty_master : out_fd;
	s->out_fds[2] = err_fd;
	s->stdin_fd = pty_master >= 0 ? pty_master : in_fd;
	s->pty_master = pty_master;
	for (int i = 1; i <= 2; i++)
		if (s->out_fds[i] >= 0)
			set_nonblocking(s->out_fds[i]);
	if (s->stdin_fd >= 0)
		set_nonblocking(s->stdin_fd);
}

/* Known from clone/fork on, so that "state" and "signal" work on a created container. */
void session_set_pid(struct session *s, pid_t pid)
{
	s->pid = pid;
}

void session_notify_ready(struct session *s)
{
	ready_send(&s->cfg.ready_fd, "ok\n");
}

/* The child has exec'd: record it for the daemon and let the launcher return. */
void session_started(struct session *s, pid_t pid)
{
	s->pid = pid;
	s->state = STATE_RUNNING;
	if (s->cfg.state_path) {
		char started[40], text[128];
		struct failure f;
		format_rfc3339nano(started);
		snprintf(text, sizeof text, "pid %d\nstarted %s\n", (int)pid, started);
		atomic_write_file(s->cfg.state_path, text, &f); /* the exit file will still tell the story */
	}
	session_notify_ready(s);
}

void session_start_failed(struct session *s, pid_t pid, const char *error)
{
	s->pid = pid;
	free(s->error);
	s->error = xstrdup(error);
	/* The child exits right after reporting; its SIGCHLD ends the loop. */
	s->state = STATE_RUNNING;
}

static void drop_client(struct session *s, size_t i)
{
	struct client *c = &s->clients[i];
	close(c->fd);
	buf_free(&c->in);
	buf_free(&c->out);
	s->clients[i] = s->clients[--s->nclients];
}

static int flush_client(struct client *c)
{
	while (c->out.len > 0) {
		ssize_t n = write(c->fd, c->out.data, c->out.len);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		buf_consume(&c->out, (size_t)n);
	}
	return 0;
}

static void reply(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(struct client *c, const char *fmt, ...)
{
	char line[1200];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof line - 2)
		n = sizeof line - 2;
	line[n++] = '\n';
	buf_append(&c->out, line, (size_t)n);
}

static const char *state_name(enum container_state st)
{
	return st == STATE_CREATED ? "created" : st == STATE_RUNNING ? "running" : "exited";
}

static void handle_command(struct session *s, struct client *c, char *line)
{
	char *words[4] = {0};
	int n = 0;
	for (char *save = NULL, *w = strtok_r(line, " \r", &save); w && n < 4; w = strtok_r(NULL, " \r", &save))
		words[n++] = w;
	const char *cmd = n ? words[0] : "";
	c->close_when_flushed = 1;

	if (strcmp(cmd, "attach") == 0) {
		int wants_stdin = n > 1 && strcmp(words[1], "stdin") == 0;
		if (wants_stdin && !s->cfg.spec->open_stdin) {
			reply(c, "error the container's stdin is not open (spec: stdin 0)");
			return;
		}
		c->attached = 1;
		c->wants_stdin = wants_stdin;
		c->close_when_flushed = 0;
		reply(c, "ok");
	} else if (strcmp(cmd, "signal") == 0 && n == 2) {
		uint64_t sig;
		if (parse_u64(words[1], &sig) < 0 || sig < 1 || sig > 64)
			reply(c, "error bad signal %s", words[1]);
		else if (s->state == STATE_EXITED || s->pid <= 0)
			reply(c, "error the container is not running");
		else if (kill(s->pid, (int)sig) < 0)
			reply(c, "error kill: %s", strerror(errno));
		else
			reply(c, "ok");
	} else if (strcmp(cmd, "resize") == 0 && n == 3) {
		uint64_t rows, cols;
		struct winsize ws = {0};
		if (parse_u64(words[1], &rows) < 0 || parse_u64(words[2], &cols) < 0 || rows > 65535 || cols > 65535)
			reply(c, "error bad size");
		else if (s->pty_master < 0)
			reply(c, "error the container has no tty");
		else {
			ws.ws_row = (unsigned short)rows;
			ws.ws_col = (unsigned short)cols;
			if (ioctl(s->pty_master, TIOCSWINSZ, &ws) < 0)
				reply(c, "error resize: %s", strerror(errno));
			else
				reply(c, "ok");
		}
	} else if (strcmp(cmd, "state") == 0) {
		reply(c, "ok pid %d status %s", (int)s->pid, state_name(s->state));
	} else if (strcmp(cmd, "start") == 0) {
		if (s->state != STATE_CREATED)
			reply(c, "error the container was already started");
		else if (s->cfg.start(s) < 0 || s->error)
			reply(c, "error %s", s->error ? s->error : "start failed");
		else
			reply(c, "ok");
	} else {
		reply(c, "error unknown command");
	}
}

static void queue_stdin(struct session *s, const char *data, size_t n)
{
	if (s->stdin_fd >= 0 && n > 0)
		buf_append(&s->stdin_buf, data, n);
}

/* Returns -1 when the client must be dropped. */
static int read_client(struct session *s, struct client *c)
{
	char chunk[16384];
	ssize_t n = read(c->fd, chunk, sizeof chunk);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0) {
		c->read_closed = 1;
		if (!c->has_command)
			return -1;
		/* Half-close from a stdin client ends the container's stdin (not a pty's:
		 * closing the master would hang up the terminal). */
		if (c->wants_stdin && s->pty_master < 0)
			s->stdin_close_pending = 1;
		return 0;
	}
	if (c->has_command) {
		if (c->wants_stdin)
			queue_stdin(s, chunk, (size_t)n);
		return 0;
	}
	buf_append(&c->in, chunk, (size_t)n);
	char *newline = memchr(c->in.data, '\n', c->in.len);
	if (!newline)
		return c->in.len > MAX_COMMAND_LINE ? -1 : 0;
	*newline = '\0';
	c->has_command = 1;
	size_t rest_at = (size_t)(newline - c->in.data) + 1;
	handle_command(s, c, c->in.data);
	if (c->wants_stdin)
		queue_stdin(s, c->in.data + rest_at, c->in.len - rest_at);
	buf_free(&c->in);
	return 0;
}

static void accept_clients(struct session *s)
{
	for (;;) {
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		if (s->nclients == MAX_CLIENTS) {
			close(fd);
			continue;
		}
		struct client *c = &s->clients[s->nclients++];
		memset(c, 0, sizeof *c);
		c->fd = fd;
	}
}

/* Frames output for attached clients and logs it. */
static void dispatch_output(struct session *s, int stream, const char *data, size_t n)
{
	json_log_write(s->cfg.log, stream, data, n);
	unsigned char header[FRAME_HEADER] = {(unsigned char)stream, (unsigned char)(n >> 24), (unsigned char)(n >> 16),
					      (unsigned char)(n >> 8), (unsigned char)n};
	for (size_t i = 0; i < s->nclients;) {
		struct client *c = &s->clients[i];
		if (!c->attached) {
			i++;
			continue;
		}
		if (c->out.len + FRAME_HEADER + n > CLIENT_BUFFER_LIMIT) {
			drop_client(s, i); /* too slow: never let it hold the container back */
			continue;
		}
		buf_append(&c->out, header, FRAME_HEADER);
		buf_append(&c->out, data, n);
		if (flush_client(c) < 0) {
			drop_client(s, i);
			continue;
		}
		i++;
	}
}

/* Reads what is there; returns 0 at end of stream (EOF, or EIO: pty without slaves). */
static int pump_output(struct session *s, int stream)
{
	char chunk[32768];
	ssize_t n = read(s->out_fds[stream], chunk, sizeof chunk);
	if (n > 0) {
		dispatch_output(s, stream, chunk, (size_t)n);
		return 1;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return -1;
	return 0;
}

static void close_output(struct session *s, int stream)
{
	int fd = s->out_fds[stream];
	if (fd < 0)
		return;
	s->out_fds[stream] = -1;
	if (fd == s->stdin_fd) /* the pty: one descriptor for both directions */
		return;
	close(fd);
}

static void close_stdin(struct session *s)
{
	if (s->stdin_fd >= 0 && s->stdin_fd != s->out_fds[1])
		close(s->stdin_fd);
	s->stdin_fd = -1;
	s->stdin_close_pending = 0;
	buf_free(&s->stdin_buf);
}

static void write_stdin(struct session *s)
{
	while (s->stdin_buf.len > 0) {
		ssize_t n = write(s->stdin_fd, s->stdin_buf.data, s->stdin_buf.len);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			close_stdin(s); /* the container closed its end: drop what it will never read */
			return;
		}
		buf_consume(&s->stdin_buf, (size_t)n);
	}
}

static void reap_child(struct session *s)
{
	if (s->pid <= 0 || s->state == STATE_EXITED)
		return;
	int status;
	pid_t r = waitpid(s->pid, &status, WNOHANG);
	if (r == s->pid) {
		s->wait_status = status;
		s->state = STATE_EXITED;
	}
}

static void handle_signals(struct session *s)
{
	struct signalfd_siginfo info;
	while (read(s->signal_fd, &info, sizeof info) == sizeof info) {
		if (info.ssi_signo == SIGCHLD)
			reap_child(s);
		else if (s->pid > 0 && s->state == STATE_RUNNING)
			kill(s->pid, (int)info.ssi_signo);
	}
	/* The signalfd coalesces SIGCHLDs, so also look after every wakeup. */
	reap_child(s);
}

static void write_exit_file(struct session *s)
{
	int status = s->wait_status, code, sig = 0;
	if (WIFSIGNALED(status)) {
		sig = WTERMSIG(status);
		code = 128 + sig;
	} else {
		code = WEXITSTATUS(status);
	}
	char finished[40];
	format_rfc3339nano(finished);
	struct buf text = {0};
	char head[128];
	snprintf(head, sizeof head, "code %d\nsignal %d\nfinished %s\n", code, sig, finished);
	buf_append(&text, head, strlen(head));
	if (s->error) {
		buf_append(&text, "error ", 6);
		percent_escape(s->error, &text);
		buf_append(&text, "\n", 1);
	}
	buf_append(&text, "", 1);
	struct failure f;
	atomic_write_file(s->cfg.exit_path, text.data, &f);
	buf_free(&text);
}

/* Last output, exit file, then a bounded wait for clients to take their bytes. */
static void finish(struct session *s)
{
	for (int stream = 1; stream <= 2; stream++) {
		while (s->out_fds[stream] >= 0 && pump_output(s, stream) > 0)
			;
		close_output(s, stream);
	}
	close_stdin(s);
	json_log_close(s->cfg.log);
	s->cfg.log = NULL;
	close(s->listen_fd);
	unlink(s->cfg.ctl_path);
	write_exit_file(s);
	session_notify_ready(s);

	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		struct pollfd pfds[MAX_CLIENTS];
		nfds_t n = 0;
		for (size_t i = 0; i < s->nclients; i++)
			if (s->clients[i].out.len > 0)
				pfds[n++] = (struct pollfd){.fd = s->clients[i].fd, .events = POLLOUT};
		clock_gettime(CLOCK_MONOTONIC, &now);
		long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
		if (n == 0 || elapsed >= FINAL_FLUSH_MS)
			break;
		if (poll(pfds, n, (int)(FINAL_FLUSH_MS - elapsed)) < 0 && errno != EINTR)
			break;
		for (size_t i = 0; i < s->nclients; i++)
			if (flush_client(&s->clients[i]) < 0)
				s->clients[i].out.len = 0;
	}
	while (s->nclients > 0)
		drop_client(s, s->nclients - 1);
	if (s->cfg.pid_path)
		unlink(s->cfg.pid_path);
	close(s->signal_fd);
}

int session_run(struct session *s)
{
	enum { MAX_FDS = 6 + MAX_CLIENTS };
	for (;;) {
		if (s->state == STATE_EXITED) {
			finish(s);
			return 0;
		}
		if (s->stdin_close_pending && s->stdin_buf.len == 0)
			close_stdin(s);

		struct pollfd pfds[MAX_FDS];
		nfds_t n = 0;
		pfds[n++] = (struct pollfd){.fd = s->signal_fd, .events = POLLIN};
		pfds[n++] = (struct pollfd){.fd = s->listen_fd, .events = POLLIN};
		/* Nothing is read from the container before it runs (a pty does not exist yet). */
		for (int stream = 1; stream <= 2; stream++)
			pfds[n++] = (struct pollfd){.fd = s->out_fds[stream], .events = POLLIN};
		pfds[n++] = (struct pollfd){.fd = s->stdin_buf.len ? s->stdin_fd : -1, .events = POLLOUT};
		nfds_t first_client = n;
		for (size_t i = 0; i < s->nclients; i++) {
			struct client *c = &s->clients[i];
			short events = 0;
			/* A full stdin buffer pushes back on the writers instead of growing. */
			if (!c->read_closed && !(c->wants_stdin && s->stdin_buf.len > STDIN_BUFFER_LIMIT))
				events |= POLLIN;
			if (c->out.len)
				events |= POLLOUT;
			pfds[n++] = (struct pollfd){.fd = c->fd, .events = events};
		}
		if (poll(pfds, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (pfds[0].revents)
			handle_signals(s);
		if (pfds[1].revents)
			accept_clients(s);
		for (int stream = 1; stream <= 2; stream++)
			if (pfds[1 + stream].revents && s->out_fds[stream] >= 0 && pump_output(s, stream) == 0)
				close_output(s, stream);
		if (pfds[4].revents && s->stdin_fd >= 0)
			write_stdin(s);

		/* Clients may have been dropped or added above: match by descriptor. */
		for (nfds_t p = first_client; p < n; p++) {
			if (!pfds[p].revents)
				continue;
			for (size_t i = 0; i < s->nclients; i++) {
				struct client *c = &s->clients[i];
				if (c->fd != pfds[p].fd)
					continue;
				int bad = 0;
				/* A hangup after EOF was read means nobody is left to write to either. */
				if ((pfds[p].revents & (POLLHUP | POLLERR)) && c->read_closed)
					bad = 1;
				else if (pfds[p].revents & (POLLIN | POLLHUP | POLLERR))
					bad = read_client(s, c) < 0;
				if (!bad && (pfds[p].revents & POLLOUT))
					bad = flush_client(c) < 0;
				if (!bad && c->close_when_flushed && c->out.len == 0)
					bad = 1;
				if (bad)
					drop_client(s, i);
				break;
			}
		}
		/* A command reply queued this round (no POLLOUT asked yet). */
		for (size_t i = 0; i < s->nclients;) {
			struct client *c = &s->clients[i];
			if (flush_client(c) < 0 || (c->close_when_flushed && c->out.len == 0))
				drop_client(s, i);
			else
				i++;
		}
	}
}
