/* `berth-helper run`: clone the container (into its pid namespace), hold it on a sync
 * pipe until it is in its cgroups, then let it enter its other namespaces, build its
 * root and exec. The helper stays as its parent and relays its stdio (session.c). */
#define _GNU_SOURCE
#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

#define SPEC_FILE "spec"
#define STATE_FILE "state"
#define EXIT_FILE "exit"
#define CTL_SOCKET "ctl.sock"
#define PID_FILE "helper.pid"

/* Descriptors the child keeps; -1 when unused. */
struct child_fds {
	int sync, error, console, in, out, err, netns;
};

struct launch {
	const struct spec *spec;
	pid_t pid;
	int sync_fd, error_fd, console_fd;
};

static int send_fd(int sock, int fd)
{
	char byte = 'c';
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	memset(&control, 0, sizeof control);
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);
	return sendmsg(sock, &msg, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

static int receive_fd(int sock)
{
	char byte;
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
	ssize_t n;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	struct cmsghdr *cmsg = n == 1 ? CMSG_FIRSTHDR(&msg) : NULL;
	if (!cmsg || cmsg->cmsg_type != SCM_RIGHTS || cmsg->cmsg_len != CMSG_LEN(sizeof(int)))
		return -1;
	int fd;
	memcpy(&fd, CMSG_DATA(cmsg), sizeof fd);
	return fd;
}

/* A new network namespace has only a loopback, and it is down; docker brings it up. */
static int loopback_up(struct failure *f)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail_errno(f, errno, "loopback: socket");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "lo");
	int rc = 0;
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		rc = fail_errno(f, errno, "loopback: get flags");
	ifr.ifr_flags |= IFF_UP;
	if (rc == 0 && ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		rc = fail_errno(f, errno, "loopback: up");
	close(fd);
	return rc;
}

static int redirect_stdio(const struct child_fds *c, struct failure *f)
{
	const int from[3] = {c->in, c->out, c->err};
	for (int i = 0; i < 3; i++)
		if (dup2(from[i], i) < 0)
			return fail_errno(f, errno, "stdio: dup2");
	for (int i = 0; i < 3; i++)
		if (from[i] > 2)
			close(from[i]);
	return 0;
}

/* The terminal becomes stdio and the controlling terminal of the new session. */
static int attach_console(const struct spec *s, int console_sock, struct failure *f)
{
	int master, slave;
	if (open_console(s->rootfs, &master, &slave, f) < 0)
		return -1;
	int rc = send_fd(console_sock, master);
	close(master);
	if (rc < 0) {
		close(slave);
		return fail_errno(f, errno, "console: send pty to the helper");
	}
	if (fchown(slave, s->uid, (gid_t)-1) < 0)
		return fail_errno(f, errno, "console: chown");
	for (int i = 0; i < 3; i++)
		if (dup2(slave, i) < 0)
			return fail_errno(f, errno, "console: dup2");
	close(slave);
	if (ioctl(0, TIOCSCTTY, 0) < 0)
		return fail_errno(f, errno, "console: set controlling terminal");
	return 0;
}

static void container_main(const struct spec *s, const struct child_fds *c) __attribute__((noreturn));
static void container_main(const struct spec *s, const struct child_fds *c)
{
	struct failure f = {{0}};
	const int keep[] = {c->sync, c->error, c->console, c->in, c->out, c->err, c->netns};
	/* The helper's log, socket and signalfd are not the container's business. */
	if (close_fds_except(keep, sizeof keep / sizeof *keep) < 0) {
		fail_errno(&f, errno, "close inherited descriptors");
		report_and_exit(c->error, &f);
	}
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);

	char go;
	if (read(c->sync, &go, 1) != 1)
		_exit(1); /* the helper gave up on us (cgroup setup failed) */
	close(c->sync);

	if (setsid() < 0) {
		fail_errno(&f, errno, "setsid");
		report_and_exit(c->error, &f);
	}
	/* Every namespace but pid is entered here rather than by clone: qemu-user (the
	 * cross-built helpers' self-test) refuses clone with CLONE_NEW* flags but passes
	 * unshare through. After the release, so a failure reaches the helper through the
	 * error pipe, and the cgroup namespace is rooted in the cgroups just joined. */
	int unshare_flags = s->clone_flags & ~CLONE_NEWPID;
	if (unshare_flags && unshare(unshare_flags) < 0) {
		fail_errno(&f, errno, "unshare namespaces");
		report_and_exit(c->error, &f);
	}
	if (c->netns >= 0 && setns(c->netns, CLONE_NEWNET) < 0) {
		fail_errno(&f, errno, "join network namespace %s", s->netns);
		report_and_exit(c->error, &f);
	}
	if (c->netns < 0 && (s->clone_flags & CLONE_NEWNET) && loopback_up(&f) < 0)
		report_and_exit(c->error, &f);
	if (!s->tty && redirect_stdio(c, &f) < 0)
		report_and_exit(c->error, &f);
	if (c->netns >= 0)
		close(c->netns);

	umask(0); /* device nodes and mount points get exactly the modes asked for */
	if (prepare_rootfs(s, &f) < 0 || create_devices(s->rootfs, &f) < 0)
		report_and_exit(c->error, &f);
	if (s->tty && attach_console(s, c->console, &f) < 0)
		report_and_exit(c->error, &f);
	close(c->console);
	if (enter_rootfs(s->rootfs, &f) < 0 || mask_and_protect_paths(s, &f) < 0)
		report_and_exit(c->error, &f);
	if (s->hostname && sethostname(s->hostname, strlen(s->hostname)) < 0) {
		fail_errno(&f, errno, "sethostname %s", s->hostname);
		report_and_exit(c->error, &f);
	}
	if (apply_process_settings(s, &f) < 0)
		report_and_exit(c->error, &f);
	if (s->init)
		run_as_init(s, c->error);
	exec_command(s, &f);
	report_and_exit(c->error, &f);
}

static int join_cgroups(const struct spec *s, pid_t pid, struct failure *f)
{
	char text[32];
	int len = snprintf(text, sizeof text, "%d\n", (int)pid);
	for (size_t i = 0; i < s->cgroup_procs.count; i++) {
		const char *path = s->cgroup_procs.items[i];
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return fail_errno(f, errno, "cgroup: open %s", path);
		int rc = write_all(fd, text, (size_t)len);
		int err = errno;
		close(fd);
		if (rc < 0)
			return fail_errno(f, err, "cgroup: write %s", path);
	}
	return 0;
}

/* Releases the child and waits until it has exec'd (the CLOEXEC error pipe closes
 * empty) or failed (the pipe carries its message). */
static int start_container(struct session *s)
{
	struct launch *l = session_launch(s);
	char go = 'g';
	int rc = write_all(l->sync_fd, &go, 1);
	close(l->sync_fd);
	l->sync_fd = -1;
	if (rc < 0) {
		session_start_failed(s, l->pid, "start: the container process is gone");
		return -1;
	}
	int master = -1;
	if (l->spec->tty) {
		master = receive_fd(l->console_fd);
		close(l->console_fd);
	}
	struct buf error = {0};
	char chunk[512];
	ssize_t n;
	while ((n = read(l->error_fd, chunk, sizeof chunk)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		buf_append(&error, chunk, (size_t)n);
	}
	close(l->error_fd);
	if (error.len > 0 || (l->spec->tty && master < 0)) {
		buf_append(&error, "", 1);
		session_start_failed(s, l->pid, error.len > 1 ? error.data : "console: no pty from the container");
		buf_free(&error);
		if (master >= 0)
			close(master);
		return -1;
	}
	buf_free(&error);
	if (master >= 0)
		session_set_stdio(s, -1, -1, -1, master);
	session_started(s, l->pid);
	return 0;
}

/* Errors before the container exists still leave an exit file for the daemon. */
static int fail_early(const struct failure *f, int *ready_fd)
{
	report_early_failure(EXIT_FILE, 125, f, ready_fd);
	unlink(PID_FILE);
	return 1;
}

static int make_pipe(int fds[2], struct failure *f)
{
	if (pipe2(fds, O_CLOEXEC) < 0)
		return fail_errno(f, errno, "pipe");
	return 0;
}

int run_container(int ready_fd)
{
	struct failure f = {{0}};
	struct spec spec;
	unlink(EXIT_FILE);
	unlink(STATE_FILE);
	if (spec_load(SPEC_FILE, SPEC_RUN, &spec, &f) < 0)
		return fail_early(&f, &ready_fd);
	char pid_text[32];
	snprintf(pid_text, sizeof pid_text, "%d\n", (int)getpid());
	if (atomic_write_file(PID_FILE, pid_text, &f) < 0)
		return fail_early(&f, &ready_fd);

	struct json_log *log = NULL;
	if (spec.log_path && !(log = json_log_open(spec.log_path, spec.log_max_bytes, spec.log_max_files, &f)))
		return fail_early(&f, &ready_fd);

	int sync_pipe[2], error_pipe[2], console[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, in[2] = {-1, -1};
	int netns = -1;
	if (make_pipe(sync_pipe, &f) < 0 || make_pipe(error_pipe, &f) < 0)
		return fail_early(&f, &ready_fd);
	if (spec.tty && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, console) < 0) {
		fail_errno(&f, errno, "socketpair");
		return fail_early(&f, &ready_fd);
	}
	if (!spec.tty) {
		if (make_pipe(out, &f) < 0 || make_pipe(err, &f) < 0)
			return fail_early(&f, &ready_fd);
		if (spec.open_stdin ? make_pipe(in, &f) < 0 : (in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
			return fail_early(&f, &ready_fd);
	}
	if (spec.netns && (netns = open(spec.netns, O_RDONLY | O_CLOEXEC)) < 0) {
		fail_errno(&f, errno, "open netns %s", spec.netns);
		return fail_early(&f, &ready_fd);
	}

	struct launch launch = {.spec = &spec, .sync_fd = sync_pipe[1], .error_fd = error_pipe[0], .console_fd = console[0]};
	struct session_config cfg = {
		.spec = &spec,
		.ctl_path = CTL_SOCKET,
		.exit_path = EXIT_FILE,
		.state_path = STATE_FILE,
		.pid_path = PID_FILE,
		.log = log,
		.ready_fd = ready_fd,
		.start = start_container,
		.launch = &launch,
	};
	struct session *s = session_create(&cfg, &f);
	if (!s)
		return fail_early(&f, &ready_fd);

	/* Raw clone with no stack behaves like fork (and the argument order of the
	 * unused pointers, which differs per architecture, does not matter). Only the
	 * pid namespace must be created here, for the child to be its PID 1; the child
	 * unshares the others itself (container_main). */
	int flags = (spec.clone_flags & CLONE_NEWPID) | SIGCHLD;
	pid_t pid = (pid_t)syscall(SYS_clone, flags, 0, 0, 0, 0);
	if (pid < 0) {
		fail_errno(&f, errno, "clone");
		return fail_early(&f, &ready_fd);
	}
	if (pid == 0) {
		struct child_fds c = {
			.sync = sync_pipe[0], .error = error_pipe[1], .console = console[1],
			.in = in[0], .out = out[1], .err = err[1], .netns = netns,
		};
		container_main(&spec, &c);
	}
	launch.pid = pid;
	session_set_pid(s, pid);
	const int child_ends[] = {sync_pipe[0], error_pipe[1], console[1], in[0], out[1], err[1], netns};
	for (size_t i = 0; i < sizeof child_ends / sizeof *child_ends; i++)
		if (child_ends[i] >= 0)
			close(child_ends[i]);
	session_set_stdio(s, out[0], err[0], in[1], -1);

	if (join_cgroups(&spec, pid, &f) < 0) {
		kill(pid, SIGKILL);
		session_start_failed(s, pid, f.msg);
	} else if (!spec.wait_start) {
		start_container(s);
	} else {
		session_notify_ready(s);
	}
	return session_run(s);
}
