/* `berth-helper exec`: run one more process in a running container. The helper joins
 * the container's pid namespace (which only affects its children), forks, and the child
 * joins the cgroups and the other namespaces, then takes the same user/capability steps
 * as the container's first process. The helper relays the process's stdio like `run`. */
#define _GNU_SOURCE
#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* mnt last: once in the container's mount namespace, host paths are gone. */
static const char *const joined_namespaces[] = {"ipc", "uts", "net", "cgroup", "mnt"};
#define NS_COUNT (sizeof joined_namespaces / sizeof *joined_namespaces)

struct exec_launch {
	pid_t pid;
	int sync_fd, error_fd;
};

struct exec_child_fds {
	int sync, error, in, out, err, tty_slave;
	int ns[NS_COUNT];
};

static int read_container_pid(pid_t *pid, struct failure *f)
{
	char text[256];
	int fd = open("state", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail_errno(f, errno, "open state (is the container running?)");
	ssize_t n = read(fd, text, sizeof text - 1);
	close(fd);
	if (n < 0)
		return fail_errno(f, errno, "read state");
	text[n] = '\0';
	int value;
	if (sscanf(text, "pid %d", &value) != 1 || value <= 0)
		return fail(f, "state: no pid");
	*pid = value;
	return 0;
}

/* Joining a namespace we are already in is skipped (and for some kinds refused). */
static int open_namespace(pid_t pid, const char *name, struct failure *f)
{
	char theirs[64], ours[64];
	snprintf(theirs, sizeof theirs, "/proc/%d/ns/%s", (int)pid, name);
	snprintf(ours, sizeof ours, "/proc/self/ns/%s", name);
	struct stat a, b;
	if (stat(theirs, &a) < 0) {
		if (errno == ENOENT && kill(pid, 0) == 0)
			return -2; /* this kernel lacks the namespace kind */
		return fail_errno(f, errno, "stat %s", theirs);
	}
	if (stat(ours, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
		return -2;
	int fd = open(theirs, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail_errno(f, errno, "open %s", theirs);
	return fd;
}

/* The pty comes from the container's devpts, reached through /proc/PID/root. */
static int open_exec_pty(pid_t pid, int *master_out, int *slave_out, struct failure *f)
{
	char dir[64], path[96];
	snprintf(dir, sizeof dir, "/proc/%d/root/dev/pts", (int)pid);
	snprintf(path, sizeof path, "%s/ptmx", dir);
	int master = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		return fail_errno(f, errno, "open %s", path);
	int unlock = 0;
	unsigned index;
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0 || ioctl(master, TIOCGPTN, &index) < 0) {
		close(master);
		return fail_errno(f, errno, "exec: unlock pty");
	}
	snprintf(path, sizeof path, "%s/%u", dir, index);
	int slave = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0) {
		close(master);
		return fail_errno(f, errno, "open %s", path);
	}
	*master_out = master;
	*slave_out = slave;
	return 0;
}

static void exec_child(const struct spec *container, const struct spec *es, const struct exec_child_fds *c)
	__attribute__((noreturn));
static void exec_child(const struct spec *container, const struct spec *es, const struct exec_child_fds *c)
{
	struct failure f = {{0}};
	int keep[6 + NS_COUNT] = {c->sync, c->error, c->in, c->out, c->err, c->tty_slave};
	for (size_t i = 0; i < NS_COUNT; i++)
		keep[6 + i] = c->ns[i];
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
		_exit(1);
	close(c->sync);
	if (setsid() < 0) {
		fail_errno(&f, errno, "setsid");
		report_and_exit(c->error, &f);
	}
	/* "0" is the writer itself; the paths are host paths, so before setns(mnt). */
	for (size_t i = 0; i < container->cgroup_procs.count; i++) {
		const char *path = container->cgroup_procs.items[i];
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write_all(fd, "0\n", 2) < 0) {
			fail_errno(&f, errno, "cgroup: join %s", path);
			report_and_exit(c->error, &f);
		}
		close(fd);
	}
	for (size_t i = 0; i < NS_COUNT; i++) {
		if (c->ns[i] >= 0 && setns(c->ns[i], 0) < 0) {
			fail_errno(&f, errno, "setns %s", joined_namespaces[i]);
			report_and_exit(c->error, &f);
		}
		if (c->ns[i] >= 0)
			close(c->ns[i]);
	}
	const int from[3] = {c->tty_slave >= 0 ? c->tty_slave : c->in, c->tty_slave >= 0 ? c->tty_slave : c->out,
			     c->tty_slave >= 0 ? c->tty_slave : c->err};
	for (int i = 0; i < 3; i++)
		if (dup2(from[i], i) < 0) {
			fail_errno(&f, errno, "stdio: dup2");
			report_and_exit(c->error, &f);
		}
	if (c->tty_slave >= 0 && ioctl(0, TIOCSCTTY, 0) < 0) {
		fail_errno(&f, errno, "exec: set controlling terminal");
		report_and_exit(c->error, &f);
	}
	if (apply_process_settings(es, &f) < 0)
		report_and_exit(c->error, &f);
	exec_command(es, &f);
	report_and_exit(c->error, &f);
}

static int start_exec(struct session *s)
{
	struct exec_launch *l = session_launch(s);
	char go = 'g';
	int rc = write_all(l->sync_fd, &go, 1);
	close(l->sync_fd);
	if (rc < 0) {
		session_start_failed(s, l->pid, "start: the exec process is gone");
		return -1;
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
	if (error.len > 0) {
		buf_append(&error, "", 1);
		session_start_failed(s, l->pid, error.data);
		buf_free(&error);
		return -1;
	}
	session_started(s, l->pid);
	return 0;
}

static int exec_fail_early(const char *exit_path, const struct failure *f, int *ready_fd)
{
	return report_early_failure(exit_path, 126, f, ready_fd);
}

int exec_in_container(const char *exec_spec_path, int ready_fd)
{
	struct failure f = {{0}};
	struct spec container, es;
	pid_t container_pid = 0;
	if (spec_load(exec_spec_path, SPEC_EXEC, &es, &f) < 0)
		return exec_fail_early(NULL, &f, &ready_fd);
	unlink(es.exit_path);
	if (spec_load("spec", SPEC_RUN, &container, &f) < 0 || read_container_pid(&container_pid, &f) < 0)
		return exec_fail_early(es.exit_path, &f, &ready_fd);

	struct exec_child_fds c = {.in = -1, .out = -1, .err = -1, .tty_slave = -1};
	for (size_t i = 0; i < NS_COUNT; i++) {
		c.ns[i] = open_namespace(container_pid, joined_namespaces[i], &f);
		if (c.ns[i] == -1)
			return exec_fail_early(es.exit_path, &f, &ready_fd);
	}
	int pid_ns = open_namespace(container_pid, "pid", &f);
	if (pid_ns == -1)
		return exec_fail_early(es.exit_path, &f, &ready_fd);

	int sync_pipe[2], error_pipe[2], out[2] = {-1, -1}, err[2] = {-1, -1}, in[2] = {-1, -1}, master = -1;
	if (pipe2(sync_pipe, O_CLOEXEC) < 0 || pipe2(error_pipe, O_CLOEXEC) < 0) {
		fail_errno(&f, errno, "pipe");
		return exec_fail_early(es.exit_path, &f, &ready_fd);
	}
	if (es.tty) {
		if (open_exec_pty(container_pid, &master, &c.tty_slave, &f) < 0)
			return exec_fail_early(es.exit_path, &f, &ready_fd);
		if (fchown(c.tty_slave, es.uid, (gid_t)-1) < 0) {
			fail_errno(&f, errno, "exec: chown pty");
			return exec_fail_early(es.exit_path, &f, &ready_fd);
		}
	} else if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
		   (es.open_stdin ? pipe2(in, O_CLOEXEC) : (in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC))) < 0) {
		fail_errno(&f, errno, "exec: stdio");
		return exec_fail_early(es.exit_path, &f, &ready_fd);
	}

	struct exec_launch launch = {.sync_fd = sync_pipe[1], .error_fd = error_pipe[0]};
	struct session_config cfg = {
		.spec = &es,
		.ctl_path = es.ctl_path,
		.exit_path = es.exit_path,
		.ready_fd = ready_fd,
		.start = start_exec,
		.launch = &launch,
	};
	struct session *s = session_create(&cfg, &f);
	if (!s)
		return exec_fail_early(es.exit_path, &f, &ready_fd);
	/* Affects only the children we create from now on. */
	if (pid_ns >= 0 && setns(pid_ns, CLONE_NEWPID) < 0) {
		fail_errno(&f, errno, "setns pid");
		return exec_fail_early(es.exit_path, &f, &ready_fd);
	}
	pid_t pid = fork();
	if (pid < 0) {
		fail_errno(&f, errno, "fork");
		return exec_fail_early(es.exit_path, &f, &ready_fd);
	}
	if (pid == 0) {
		c.sync = sync_pipe[0];
		c.error = error_pipe[1];
		c.in = in[0];
		c.out = out[1];
		c.err = err[1];
		exec_child(&container, &es, &c);
	}
	launch.pid = pid;
	session_set_pid(s, pid);
	const int child_ends[] = {sync_pipe[0], error_pipe[1], in[0], out[1], err[1], c.tty_slave, pid_ns};
	for (size_t i = 0; i < sizeof child_ends / sizeof *child_ends; i++)
		if (child_ends[i] >= 0)
			close(child_ends[i]);
	for (size_t i = 0; i < NS_COUNT; i++)
		if (c.ns[i] >= 0)
			close(c.ns[i]);
	session_set_stdio(s, out[0], err[0], in[1], master);
	if (!es.wait_start)
		start_exec(s);
	else
		session_notify_ready(s);
	return session_run(s);
}
