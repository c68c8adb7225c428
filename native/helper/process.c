/* The last steps before execve, the same for a container's first process and for exec:
 * limits, user, capabilities, no_new_privs, working directory, $PATH lookup. Also the
 * optional tiny init that stays PID 1 and runs the command as its child. */
#define _GNU_SOURCE
#include "helper.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#ifndef PR_SET_NO_NEW_PRIVS
#define PR_SET_NO_NEW_PRIVS 38
#endif

/* Docker's default when the image sets no PATH. */
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

void report_and_exit(int error_fd, const struct failure *f)
{
	if (error_fd >= 0)
		(void)write_all(error_fd, f->msg, strlen(f->msg));
	_exit(127);
}

int apply_process_settings(const struct spec *s, struct failure *f)
{
	/* Raising a hard limit needs CAP_SYS_RESOURCE, so limits go before the user switch. */
	for (size_t i = 0; i < s->nrlimits; i++)
		if (setrlimit(s->rlimits[i].resource, &s->rlimits[i].limit) < 0)
			return fail_errno(f, errno, "setrlimit %d", s->rlimits[i].resource);
	if (caps_drop_bounding(s->caps, f) < 0)
		return -1;
	/* Keep the permitted set across setuid so capset can still grant the kept caps. */
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		return fail_errno(f, errno, "prctl keepcaps");
	/* Always call setgroups: the helper's own supplementary groups must not leak in. */
	if (setgroups(s->ngroups, s->groups) < 0)
		return fail_errno(f, errno, "setgroups");
	if (setresgid(s->gid, s->gid, s->gid) < 0)
		return fail_errno(f, errno, "setgid %u", (unsigned)s->gid);
	if (setresuid(s->uid, s->uid, s->uid) < 0)
		return fail_errno(f, errno, "setuid %u", (unsigned)s->uid);
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		return fail_errno(f, errno, "prctl keepcaps");
	if (caps_set_process(s->caps, f) < 0)
		return -1;
	if (s->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return fail_errno(f, errno, "prctl no_new_privs");
	if (chdir(s->cwd) < 0)
		return fail_errno(f, errno, "chdir to cwd (%s)", s->cwd);
	umask(022);
	return 0;
}

/* execvp with the container's PATH (not ours) and Go's error texts, which users know
 * from docker. Returns only on failure. */
int exec_command(const struct spec *s, struct failure *f)
{
	const char *file = s->args.items[0];
	char *const *argv = s->args.items;
	char *const *envp = s->env.items ? s->env.items : (char *const[]){NULL};

	if (strchr(file, '/')) {
		struct stat st;
		if (stat(file, &st) < 0)
			return fail_errno(f, errno, "exec: \"%s\": stat %s", file, file);
		execve(file, argv, envp);
		return fail_errno(f, errno, "exec: \"%s\"", file);
	}
	const char *path = env_value(&s->env, "PATH");
	if (!path)
		path = DEFAULT_PATH;
	int denied = 0;
	for (const char *dir = path;; dir++) {
		const char *end = strchrnul(dir, ':');
		char candidate[PATH_MAX];
		int len = end == dir ? snprintf(candidate, sizeof candidate, "./%s", file)
				     : snprintf(candidate, sizeof candidate, "%.*s/%s", (int)(end - dir), dir, file);
		if (len > 0 && (size_t)len < sizeof candidate) {
			execve(candidate, argv, envp);
			if (errno == EACCES)
				denied = 1;
			else if (errno != ENOENT && errno != ENOTDIR && errno != ENAMETOOLONG && errno != ELOOP)
				return fail_errno(f, errno, "exec: \"%s\"", candidate);
		}
		if (!*end)
			break;
		dir = end;
	}
	if (denied)
		return fail_errno(f, EACCES, "exec: \"%s\"", file);
	return fail(f, "exec: \"%s\": executable file not found in $PATH", file);
}

/* PID 1 of the container: the kernel gives PID 1 no default signal actions, so a plain
 * command as PID 1 ignores SIGTERM. This init runs the command as its child, forwards
 * every signal to it, reaps orphans, and exits with the command's status. */
void run_as_init(const struct spec *s, int error_fd)
{
	struct failure f = {{0}};
	sigset_t all, previous;
	sigfillset(&all);
	/* Blocked signals are queued even for a pid-namespace init, so none is lost
	 * between here and sigwaitinfo. */
	if (sigprocmask(SIG_BLOCK, &all, &previous) < 0) {
		fail_errno(&f, errno, "init: sigprocmask");
		report_and_exit(error_fd, &f);
	}
	pid_t child = fork();
	if (child < 0) {
		fail_errno(&f, errno, "init: fork");
		report_and_exit(error_fd, &f);
	}
	if (child == 0) {
		/* Own process group, in the terminal's foreground, so ^C reaches the command once. */
		setpgid(0, 0);
		if (s->tty)
			tcsetpgrp(0, getpid());
		sigprocmask(SIG_SETMASK, &previous, NULL);
		exec_command(s, &f);
		report_and_exit(error_fd, &f);
	}
	close(error_fd);
	for (;;) {
		siginfo_t info;
		int sig = sigwaitinfo(&all, &info);
		if (sig < 0)
			continue;
		if (sig != SIGCHLD) {
			kill(child, sig);
			continue;
		}
		int status;
		pid_t pid;
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			if (pid != child)
				continue;
			/* An init cannot die of its own signal, so report it as the shell does. */
			_exit(WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status));
		}
	}
}
