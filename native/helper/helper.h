/* berth-helper: shared types and the functions each .c file offers the others.
 * Protocol and file formats are described in README.md ("protocol version 1"). */
#ifndef BERTH_HELPER_H
#define BERTH_HELPER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/resource.h>

#define SPEC_MAGIC "berth-helper-spec 1"
#define HELPER_PROTOCOL_VERSION 1

/* A failure message that travels up the call chain ("step: reason"). */
struct failure {
	char msg[1024];
};
int fail(struct failure *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int fail_errno(struct failure *f, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A growable byte buffer. */
struct buf {
	char *data;
	size_t len, cap;
};
void buf_append(struct buf *b, const void *data, size_t n);
void buf_consume(struct buf *b, size_t n);
void buf_free(struct buf *b);

/* A NULL-terminated list of strings (argv, envp, paths). */
struct strlist {
	char **items;
	size_t count;
};
void strlist_add(struct strlist *l, char *s);

struct mount_entry {
	char *source, *target, *fstype, *data;
	unsigned long flags;
};

struct rlimit_entry {
	int resource;
	struct rlimit limit;
};

enum spec_kind { SPEC_RUN, SPEC_EXEC };

struct spec {
	char *rootfs, *cwd, *hostname, *netns;
	struct strlist args, env, masked, readonly, cgroup_procs;
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	size_t ngroups;
	int clone_flags; /* CLONE_NEW* from the ns lines */
	struct mount_entry *mounts;
	size_t nmounts;
	uint64_t caps; /* bit n = capability n is kept */
	struct rlimit_entry *rlimits;
	size_t nrlimits;
	int no_new_privs, tty, open_stdin, init, wait_start;
	char *log_path;
	uint64_t log_max_bytes;
	unsigned log_max_files;
	char *ctl_path, *exit_path; /* exec specs only */
};

/* util.c */
void *xmalloc(size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
int write_all(int fd, const void *data, size_t n);
int set_nonblocking(int fd);
int atomic_write_file(const char *path, const char *text, struct failure *f);
void format_rfc3339nano(char out[40]);
int percent_unescape(char *s);
void percent_escape(const char *in, struct buf *out);
int close_fds_except(const int *keep, size_t nkeep);
int parse_u64(const char *s, uint64_t *out);
const char *env_value(const struct strlist *env, const char *name);

/* spec.c */
int spec_load(const char *path, enum spec_kind kind, struct spec *s, struct failure *f);

/* caps.c */
int cap_from_name(const char *name);
int caps_drop_bounding(uint64_t keep, struct failure *f);
int caps_set_process(uint64_t keep, struct failure *f);

/* mounts.c */
int resolve_in_root(const char *root, const char *path, char *out, size_t outlen, struct failure *f);
int prepare_rootfs(const struct spec *s, struct failure *f);
int create_devices(const char *root, struct failure *f);
int open_console(const char *root, int *master, int *slave, struct failure *f);
int enter_rootfs(const char *root, struct failure *f);
int mask_and_protect_paths(const struct spec *s, struct failure *f);

/* process.c: the last steps before execve, shared by run and exec */
int apply_process_settings(const struct spec *s, struct failure *f);
int exec_command(const struct spec *s, struct failure *f);
void run_as_init(const struct spec *s, int error_fd) __attribute__((noreturn));
void report_and_exit(int error_fd, const struct failure *f) __attribute__((noreturn));

/* log.c: docker's json-file format with size rotation */
struct json_log;
struct json_log *json_log_open(const char *path, uint64_t max_bytes, unsigned max_files, struct failure *f);
void json_log_write(struct json_log *log, int stream, const char *data, size_t n);
void json_log_close(struct json_log *log);
void json_escape(const char *data, size_t n, struct buf *out);

/* session.c: the relay loop between the container's stdio, the log and ctl clients */
struct session;
typedef int (*session_start_fn)(struct session *s);
struct session_config {
	const struct spec *spec;
	const char *ctl_path, *exit_path, *state_path, *pid_path; /* state/pid may be NULL */
	struct json_log *log;                                    /* may be NULL */
	int ready_fd;                                            /* launcher's readiness pipe, or -1 */
	session_start_fn start;
	void *launch;
};
struct session *session_create(const struct session_config *cfg, struct failure *f);
int session_listen_fd(const struct session *s);
void *session_launch(struct session *s);
void session_set_stdio(struct session *s, int out_fd, int err_fd, int in_fd, int pty_master);
void session_set_pid(struct session *s, pid_t pid);
void session_started(struct session *s, pid_t pid);
void session_start_failed(struct session *s, pid_t pid, const char *error);
void session_notify_ready(struct session *s);
int session_run(struct session *s); /* returns the helper's own exit code */

/* run.c, exec.c */
int run_container(int ready_fd);
int exec_in_container(const char *exec_spec_path, int ready_fd);

/* main.c: the readiness message to the launcher */
void ready_send(int *ready_fd, const char *line);
int report_early_failure(const char *exit_path, int code, const struct failure *f, int *ready_fd);

#endif
