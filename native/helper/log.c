/* Docker's json-file log: one {"log":...,"stream":...,"time":...} object per line of
 * output, rotated by size into PATH.1 ... PATH.(MAXFILES-1). A full or broken disk never
 * stops the container: failed writes are dropped. */
#define _GNU_SOURCE
#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Docker splits lines longer than this into several records, so do we. */
#define MAX_LINE 16384

struct json_log {
	int fd;
	char *path;
	uint64_t size, max_bytes;
	unsigned max_files;
	struct buf pending[3]; /* an unfinished line per stream (1 stdout, 2 stderr) */
	struct buf record;
};

struct json_log *json_log_open(const char *path, uint64_t max_bytes, unsigned max_files, struct failure *f)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0) {
		fail_errno(f, errno, "open log %s", path);
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		fail_errno(f, errno, "stat log %s", path);
		close(fd);
		return NULL;
	}
	struct json_log *log = xmalloc(sizeof *log);
	memset(log, 0, sizeof *log);
	log->fd = fd;
	log->path = xstrdup(path);
	log->size = (uint64_t)st.st_size;
	log->max_bytes = max_bytes;
	log->max_files = max_files;
	return log;
}

/* Length of a valid UTF-8 sequence at p (1-4), or 0 when the byte starts none. */
static size_t utf8_sequence(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		len = 2;
	else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		if (c == 0xE0)
			lo = 0xA0; /* overlong */
		if (c == 0xED)
			hi = 0x9F; /* surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		if (c == 0xF0)
			lo = 0x90; /* overlong */
		if (c == 0xF4)
			hi = 0x8F; /* above U+10FFFF */
	} else
		return 0;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	return len;
}

/* JSON string body (no quotes); invalid UTF-8 becomes U+FFFD as Go's encoder does. */
void json_escape(const char *data, size_t n, struct buf *out)
{
	const unsigned char *p = (const unsigned char *)data;
	size_t i = 0;
	while (i < n) {
		unsigned char c = p[i];
		const char *esc = NULL;
		char hex[8];
		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		default:
			if (c < 0x20) {
				snprintf(hex, sizeof hex, "\\u%04x", c);
				esc = hex;
			}
		}
		if (esc) {
			buf_append(out, esc, strlen(esc));
			i++;
			continue;
		}
		size_t len = utf8_sequence(p + i, n - i);
		if (len == 0) {
			buf_append(out, "\\ufffd", 6);
			i++;
		} else {
			buf_append(out, p + i, len);
			i += len;
		}
	}
}

static void rotate(struct json_log *log)
{
	char from[PATH_MAX], to[PATH_MAX];
	if (log->max_files <= 1) {
		/* Nowhere to keep old lines: start over. */
		if (ftruncate(log->fd, 0) == 0)
			log->size = 0;
		return;
	}
	for (unsigned i = log->max_files - 1; i >= 2; i--) {
		snprintf(from, sizeof from, "%s.%u", log->path, i - 1);
		snprintf(to, sizeof to, "%s.%u", log->path, i);
		rename(from, to); /* ENOENT is normal until there have been enough rotations */
	}
	snprintf(to, sizeof to, "%s.1", log->path);
	if (rename(log->path, to) < 0)
		return;
	int fd = open(log->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return; /* keep writing into the renamed file rather than losing output */
	close(log->fd);
	log->fd = fd;
	log->size = 0;
}

static void write_record(struct json_log *log, int stream, const char *line, size_t n)
{
	char now[40];
	format_rfc3339nano(now);
	struct buf *r = &log->record;
	r->len = 0;
	buf_append(r, "{\"log\":\"", 8);
	json_escape(line, n, r);
	const char *tail = stream == 2 ? "\",\"stream\":\"stderr\",\"time\":\"" : "\",\"stream\":\"stdout\",\"time\":\"";
	buf_append(r, tail, strlen(tail));
	buf_append(r, now, strlen(now));
	buf_append(r, "\"}\n", 3);
	if (log->max_bytes && log->size > 0 && log->size + r->len > log->max_bytes)
		rotate(log);
	if (write_all(log->fd, r->data, r->len) == 0)
		log->size += r->len;
}

void json_log_write(struct json_log *log, int stream, const char *data, size_t n)
{
	if (!log)
		return;
	struct buf *pending = &log->pending[stream == 2 ? 2 : 1];
	while (n > 0) {
		const char *newline = memchr(data, '\n', n);
		size_t take = newline ? (size_t)(newline - data) + 1 : n;
		if (pending->len + take > MAX_LINE)
			take = MAX_LINE - pending->len;
		buf_append(pending, data, take);
		data += take;
		n -= take;
		if (pending->data[pending->len - 1] == '\n' || pending->len == MAX_LINE) {
			write_record(log, stream, pending->data, pending->len);
			pending->len = 0;
		}
	}
}

void json_log_close(struct json_log *log)
{
	if (!log)
		return;
	for (int stream = 1; stream <= 2; stream++) {
		if (log->pending[stream].len)
			write_record(log, stream, log->pending[stream].data, log->pending[stream].len);
		buf_free(&log->pending[stream]);
	}
	buf_free(&log->record);
	fsync(log->fd);
	close(log->fd);
	free(log->path);
	free(log);
}
