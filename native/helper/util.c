/* Small helpers: failures, buffers, atomic files, time stamps, escaping. */
#define _GNU_SOURCE
#include "helper.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int fail(struct failure *f, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->msg, sizeof f->msg, fmt, ap);
	va_end(ap);
	return -1;
}

/* Appends ": reason" in lower case, the way Go (and so docker) spells errno texts. */
int fail_errno(struct failure *f, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(f->msg, sizeof f->msg, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof f->msg)
		return -1;
	char reason[128];
	snprintf(reason, sizeof reason, "%s", strerror(err));
	reason[0] = (char)tolower((unsigned char)reason[0]);
	snprintf(f->msg + n, sizeof f->msg - (size_t)n, ": %s", reason);
	return -1;
}

static void out_of_memory(void)
{
	static const char msg[] = "berth-helper: out of memory\n";
	(void)!write(2, msg, sizeof msg - 1);
	_exit(125);
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		out_of_memory();
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		out_of_memory();
	return p;
}

char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(xmalloc(n), s, n);
}

void buf_append(struct buf *b, const void *data, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n)
			cap *= 2;
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, n);
	b->len += n;
}

void buf_consume(struct buf *b, size_t n)
{
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void strlist_add(struct strlist *l, char *s)
{
	l->items = xrealloc(l->items, (l->count + 2) * sizeof *l->items);
	l->items[l->count++] = s;
	l->items[l->count] = NULL;
}

int write_all(int fd, const void *data, size_t n)
{
	const char *p = data;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int set_nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0)
		return -1;
	return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* temp + fsync + rename + fsync(dir): a reader sees the old file or the whole new one,
 * also after a power cut. Paths are relative to the bundle directory (our cwd). */
int atomic_write_file(const char *path, const char *text, struct failure *f)
{
	char tmp[4096];
	const char *slash = strrchr(path, '/');
	if (slash)
		snprintf(tmp, sizeof tmp, "%.*s/.%s.tmp", (int)(slash - path), path, slash + 1);
	else
		snprintf(tmp, sizeof tmp, ".%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return fail_errno(f, errno, "open %s", tmp);
	if (write_all(fd, text, strlen(text)) < 0 || fsync(fd) < 0) {
		int err = errno;
		close(fd);
		unlink(tmp);
		return fail_errno(f, err, "write %s", tmp);
	}
	if (close(fd) < 0)
		return fail_errno(f, errno, "close %s", tmp);
	if (rename(tmp, path) < 0) {
		int err = errno;
		unlink(tmp);
		return fail_errno(f, err, "rename %s", path);
	}
	char dir[4096];
	snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
	int dfd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd); /* best effort: some filesystems refuse fsync on directories */
		close(dfd);
	}
	return 0;
}

/* Go's RFC3339Nano with all nine digits, always UTC. */
void format_rfc3339nano(char out[40])
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 40 - n, ".%09uZ", (unsigned)(ts.tv_nsec % 1000000000));
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes %XX in place. Refuses %00 (C strings cannot hold it) and broken escapes. */
int percent_unescape(char *s)
{
	char *out = s;
	for (char *in = s; *in; in++) {
		if (*in != '%') {
			*out++ = *in;
			continue;
		}
		int hi = hex_value(in[1]), lo = hi < 0 ? -1 : hex_value(in[2]);
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
			return -1;
		*out++ = (char)(hi * 16 + lo);
		in += 2;
	}
	*out = '\0';
	return 0;
}

void percent_escape(const char *in, struct buf *out)
{
	for (; *in; in++) {
		if (*in == '\t' || *in == '\n' || *in == '\r' || *in == '%') {
			char esc[4];
			snprintf(esc, sizeof esc, "%%%02X", (unsigned char)*in);
			buf_append(out, esc, 3);
		} else {
			buf_append(out, in, 1);
		}
	}
}

/* The daemon may leak descriptors into us; a container must not inherit them. */
int close_fds_except(const int *keep, size_t nkeep)
{
	for (;;) {
		DIR *dir = opendir("/proc/self/fd");
		if (!dir)
			return -1;
		int dir_fd = dirfd(dir);
		int to_close[256];
		size_t n = 0;
		struct dirent *e;
		while ((e = readdir(dir)) != NULL && n < sizeof to_close / sizeof *to_close) {
			if (!isdigit((unsigned char)e->d_name[0]))
				continue;
			int fd = atoi(e->d_name);
			int kept = fd <= 2 || fd == dir_fd;
			for (size_t i = 0; i < nkeep && !kept; i++)
				kept = keep[i] == fd;
			if (!kept)
				to_close[n++] = fd;
		}
		closedir(dir);
		for (size_t i = 0; i < n; i++)
			close(to_close[i]);
		if (n < sizeof to_close / sizeof *to_close)
			return 0;
	}
}

int parse_u64(const char *s, uint64_t *out)
{
	if (!*s || !isdigit((unsigned char)*s))
		return -1;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

const char *env_value(const struct strlist *env, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < env->count; i++)
		if (strncmp(env->items[i], name, n) == 0 && env->items[i][n] == '=')
			return env->items[i] + n + 1;
	return NULL;
}
