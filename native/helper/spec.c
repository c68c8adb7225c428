/* The spec file: "berth-helper-spec 1", then KEY<TAB>VALUE[<TAB>VALUE...] lines with
 * percent-escaped values. Unknown keys are errors: silently skipping a security setting
 * the daemon asked for would be worse than refusing to start. */
#define _GNU_SOURCE
#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

#define MAX_SPEC_BYTES (1 << 20)
#define MAX_FIELDS 8

static char *read_spec_file(const char *path, struct failure *f)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fail_errno(f, errno, "open spec %s", path);
		return NULL;
	}
	struct buf b = {0};
	char chunk[4096];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fail_errno(f, errno, "read spec %s", path);
			break;
		}
		if (n == 0) {
			close(fd);
			buf_append(&b, "", 1);
			if (memchr(b.data, '\0', b.len - 1)) {
				fail(f, "spec %s: contains a NUL byte", path);
				break;
			}
			return b.data;
		}
		if (b.len + (size_t)n > MAX_SPEC_BYTES) {
			fail(f, "spec %s: larger than %d bytes", path, MAX_SPEC_BYTES);
			break;
		}
		buf_append(&b, chunk, (size_t)n);
	}
	close(fd);
	buf_free(&b);
	return NULL;
}

static int parse_bool(const char *v, int *out)
{
	if (strcmp(v, "0") == 0 || strcmp(v, "1") == 0) {
		*out = v[0] == '1';
		return 0;
	}
	return -1;
}

static int parse_id(const char *v, unsigned *out)
{
	uint64_t n;
	if (parse_u64(v, &n) < 0 || n > 0xfffffffeu)
		return -1;
	*out = (unsigned)n;
	return 0;
}

static const struct {
	const char *name;
	int flag;
} namespaces[] = {
	{"mnt", CLONE_NEWNS},   {"uts", CLONE_NEWUTS}, {"ipc", CLONE_NEWIPC},         {"pid", CLONE_NEWPID},
	{"net", CLONE_NEWNET}, {"user", CLONE_NEWUSER}, {"cgroup", CLONE_NEWCGROUP},
};

static const struct {
	const char *name;
	int resource;
} rlimits[] = {
	{"as", RLIMIT_AS},           {"core", RLIMIT_CORE},         {"cpu", RLIMIT_CPU},
	{"data", RLIMIT_DATA},       {"fsize", RLIMIT_FSIZE},       {"locks", RLIMIT_LOCKS},
	{"memlock", RLIMIT_MEMLOCK}, {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},
	{"nofile", RLIMIT_NOFILE},   {"nproc", RLIMIT_NPROC},       {"rss", RLIMIT_RSS},
	{"rtprio", RLIMIT_RTPRIO},   {"rttime", RLIMIT_RTTIME},     {"sigpending", RLIMIT_SIGPENDING},
	{"stack", RLIMIT_STACK},
};

/* Accepts docker's "nofile" and OCI's "RLIMIT_NOFILE". */
static int rlimit_from_name(const char *name)
{
	if (strncasecmp(name, "RLIMIT_", 7) == 0)
		name += 7;
	for (size_t i = 0; i < sizeof rlimits / sizeof *rlimits; i++)
		if (strcasecmp(name, rlimits[i].name) == 0)
			return rlimits[i].resource;
	return -1;
}

static int parse_rlim(const char *v, rlim_t *out)
{
	uint64_t n;
	if (strcmp(v, "unlimited") == 0 || strcmp(v, "-1") == 0) {
		*out = RLIM_INFINITY;
		return 0;
	}
	if (parse_u64(v, &n) < 0)
		return -1;
	*out = (rlim_t)n;
	return 0;
}

/* The 0|1 keys, and where each one lands. */
static int *flag_field(struct spec *s, const char *key)
{
	if (strcmp(key, "no_new_privs") == 0)
		return &s->no_new_privs;
	if (strcmp(key, "tty") == 0)
		return &s->tty;
	if (strcmp(key, "stdin") == 0)
		return &s->open_stdin;
	if (strcmp(key, "init") == 0)
		return &s->init;
	if (strcmp(key, "wait_start") == 0)
		return &s->wait_start;
	return NULL;
}

/* One line, already split and unescaped. Returns -1 with f set on a bad line. */
static int apply_line(struct spec *s, enum spec_kind kind, char **v, int n, struct failure *f)
{
	const char *key = v[0];
	int nargs = n - 1;
	int is_exec = kind == SPEC_EXEC;
#define WANT(count)                                                                    \
	do {                                                                           \
		if (nargs != (count))                                                  \
			return fail(f, "%s: expected %d value(s), got %d", key, (count), nargs); \
	} while (0)
#define RUN_ONLY()                                                                     \
	do {                                                                           \
		if (is_exec)                                                           \
			return fail(f, "%s: not allowed in an exec spec", key);        \
	} while (0)

	if (strcmp(key, "rootfs") == 0) {
		RUN_ONLY();
		WANT(1);
		s->rootfs = xstrdup(v[1]);
	} else if (strcmp(key, "arg") == 0) {
		WANT(1);
		strlist_add(&s->args, xstrdup(v[1]));
	} else if (strcmp(key, "env") == 0) {
		WANT(1);
		if (!strchr(v[1], '=') || v[1][0] == '=')
			return fail(f, "env: %s is not KEY=VALUE", v[1]);
		strlist_add(&s->env, xstrdup(v[1]));
	} else if (strcmp(key, "cwd") == 0) {
		WANT(1);
		if (v[1][0] != '/')
			return fail(f, "cwd: %s is not absolute", v[1]);
		s->cwd = xstrdup(v[1]);
	} else if (strcmp(key, "uid") == 0) {
		WANT(1);
		unsigned id;
		if (parse_id(v[1], &id) < 0)
			return fail(f, "uid: bad number %s", v[1]);
		s->uid = id;
	} else if (strcmp(key, "gid") == 0) {
		WANT(1);
		unsigned id;
		if (parse_id(v[1], &id) < 0)
			return fail(f, "gid: bad number %s", v[1]);
		s->gid = id;
	} else if (strcmp(key, "groups") == 0) {
		if (nargs < 1)
			return fail(f, "groups: expected at least one value");
		for (int i = 1; i < n; i++) {
			unsigned id;
			if (parse_id(v[i], &id) < 0)
				return fail(f, "groups: bad number %s", v[i]);
			s->groups = xrealloc(s->groups, (s->ngroups + 1) * sizeof *s->groups);
			s->groups[s->ngroups++] = id;
		}
	} else if (strcmp(key, "hostname") == 0) {
		RUN_ONLY();
		WANT(1);
		s->hostname = xstrdup(v[1]);
	} else if (strcmp(key, "ns") == 0) {
		RUN_ONLY();
		WANT(1);
		size_t i;
		for (i = 0; i < sizeof namespaces / sizeof *namespaces; i++)
			if (strcmp(v[1], namespaces[i].name) == 0)
				break;
		if (i == sizeof namespaces / sizeof *namespaces)
			return fail(f, "ns: unknown namespace %s", v[1]);
		s->clone_flags |= namespaces[i].flag;
	} else if (strcmp(key, "netns") == 0) {
		RUN_ONLY();
		WANT(1);
		s->netns = xstrdup(v[1]);
	} else if (strcmp(key, "mount") == 0) {
		RUN_ONLY();
		WANT(5);
		uint64_t flags;
		if (parse_u64(v[4], &flags) < 0)
			return fail(f, "mount %s: bad flags %s", v[2], v[4]);
		s->mounts = xrealloc(s->mounts, (s->nmounts + 1) * sizeof *s->mounts);
		s->mounts[s->nmounts++] = (struct mount_entry){
			.source = xstrdup(v[1]),
			.target = xstrdup(v[2]),
			.fstype = xstrdup(v[3]),
			.flags = (unsigned long)flags,
			.data = xstrdup(v[5]),
		};
	} else if (strcmp(key, "masked") == 0) {
		RUN_ONLY();
		WANT(1);
		strlist_add(&s->masked, xstrdup(v[1]));
	} else if (strcmp(key, "readonly") == 0) {
		RUN_ONLY();
		WANT(1);
		strlist_add(&s->readonly, xstrdup(v[1]));
	} else if (strcmp(key, "cap") == 0) {
		WANT(1);
		int cap = cap_from_name(v[1]);
		if (cap < 0)
			return fail(f, "cap: unknown capability %s", v[1]);
		s->caps |= (uint64_t)1 << cap;
	} else if (strcmp(key, "rlimit") == 0) {
		WANT(3);
		struct rlimit_entry e;
		e.resource = rlimit_from_name(v[1]);
		if (e.resource < 0)
			return fail(f, "rlimit: unknown resource %s", v[1]);
		if (parse_rlim(v[2], &e.limit.rlim_cur) < 0 || parse_rlim(v[3], &e.limit.rlim_max) < 0)
			return fail(f, "rlimit %s: bad limits %s %s", v[1], v[2], v[3]);
		s->rlimits = xrealloc(s->rlimits, (s->nrlimits + 1) * sizeof *s->rlimits);
		s->rlimits[s->nrlimits++] = e;
	} else if (flag_field(s, key)) {
		if (strcmp(key, "init") == 0)
			RUN_ONLY();
		WANT(1);
		if (parse_bool(v[1], flag_field(s, key)) < 0)
			return fail(f, "%s: expected 0 or 1, got %s", key, v[1]);
	} else if (strcmp(key, "cgroup_procs") == 0) {
		RUN_ONLY();
		WANT(1);
		strlist_add(&s->cgroup_procs, xstrdup(v[1]));
	} else if (strcmp(key, "log") == 0) {
		RUN_ONLY();
		WANT(3);
		uint64_t max_bytes, max_files;
		if (parse_u64(v[2], &max_bytes) < 0 || parse_u64(v[3], &max_files) < 0 || max_files > 1000)
			return fail(f, "log: bad limits %s %s", v[2], v[3]);
		s->log_path = xstrdup(v[1]);
		s->log_max_bytes = max_bytes;
		s->log_max_files = (unsigned)max_files;
	} else if (strcmp(key, "ctl") == 0 || strcmp(key, "exit") == 0) {
		if (!is_exec)
			return fail(f, "%s: only allowed in an exec spec", key);
		WANT(1);
		if (key[0] == 'c')
			s->ctl_path = xstrdup(v[1]);
		else
			s->exit_path = xstrdup(v[1]);
	} else {
		return fail(f, "unknown key %s", key);
	}
	return 0;
#undef WANT
#undef RUN_ONLY
}

int spec_load(const char *path, enum spec_kind kind, struct spec *s, struct failure *f)
{
	memset(s, 0, sizeof *s);
	char *text = read_spec_file(path, f);
	if (!text)
		return -1;
	int rc = -1, lineno = 0;
	char *line = text;
	while (line && *line) {
		char *next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		if (lineno == 1) {
			if (strcmp(line, SPEC_MAGIC) != 0) {
				fail(f, "spec %s: first line must be \"%s\"", path, SPEC_MAGIC);
				goto out;
			}
		} else if (line[0] != '\0' && line[0] != '#') {
			char *fields[MAX_FIELDS];
			int n = 0;
			for (char *p = line; p; n++) {
				if (n == MAX_FIELDS) {
					fail(f, "spec %s line %d: too many fields", path, lineno);
					goto out;
				}
				fields[n] = p;
				p = strchr(p, '\t');
				if (p)
					*p++ = '\0';
				if (percent_unescape(fields[n]) < 0) {
					fail(f, "spec %s line %d: bad %%-escape", path, lineno);
					goto out;
				}
			}
			struct failure line_failure;
			if (apply_line(s, kind, fields, n, &line_failure) < 0) {
				fail(f, "spec %s line %d: %s", path, lineno, line_failure.msg);
				goto out;
			}
		}
		line = next;
	}
	if (lineno == 0) {
		fail(f, "spec %s: empty", path);
		goto out;
	}
	if (s->args.count == 0) {
		fail(f, "spec %s: no arg lines (nothing to run)", path);
		goto out;
	}
	if (!s->cwd)
		s->cwd = xstrdup("/");
	if (kind == SPEC_RUN) {
		if (!s->rootfs) {
			fail(f, "spec %s: no rootfs", path);
			goto out;
		}
		if (!(s->clone_flags & CLONE_NEWNS)) {
			fail(f, "spec %s: \"ns mnt\" is required (pivot_root needs a private mount namespace)", path);
			goto out;
		}
		if (s->clone_flags & CLONE_NEWUSER) {
			fail(f, "spec %s: user namespaces are not supported yet", path);
			goto out;
		}
		if (s->netns && (s->clone_flags & CLONE_NEWNET)) {
			fail(f, "spec %s: \"netns\" and \"ns net\" exclude each other", path);
			goto out;
		}
	} else if (!s->ctl_path || !s->exit_path) {
		fail(f, "spec %s: an exec spec needs ctl and exit", path);
		goto out;
	}
	rc = 0;
out:
	free(text);
	return rc;
}
