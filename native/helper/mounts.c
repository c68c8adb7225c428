/* The container's filesystem view: spec mounts under the rootfs, device nodes, the
 * console, pivot_root, masked and read-only paths. Runs in the child, in its own mount
 * namespace, before the switch to the container's user. */
#define _GNU_SOURCE
#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define MAX_SYMLINKS 40
#define PROPAGATION_FLAGS (MS_SHARED | MS_SLAVE | MS_PRIVATE | MS_UNBINDABLE)

/* Resolves `path` as the container will see it, with `root` as "/": symlinks in the
 * image are followed but cannot lead out of the rootfs (an image with
 * /etc/resolv.conf -> /etc/shadow must not get the host's file mounted over). Missing
 * components are kept literally, to be created by the caller. */
int resolve_in_root(const char *root, const char *path, char *out, size_t outlen, struct failure *f)
{
	char resolved[PATH_MAX] = "", pending[PATH_MAX], full[PATH_MAX];
	int links = 0;
	if ((size_t)snprintf(pending, sizeof pending, "%s", path) >= sizeof pending)
		return fail(f, "resolve %s: path too long", path);
	char *p = pending;
	for (;;) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		char *end = strchrnul(p, '/');
		size_t len = (size_t)(end - p);
		size_t before = strlen(resolved);
		if (len == 1 && p[0] == '.') {
			p = end;
			continue;
		}
		if (len == 2 && p[0] == '.' && p[1] == '.') {
			char *slash = strrchr(resolved, '/');
			if (slash)
				*slash = '\0';
			p = end;
			continue;
		}
		if (before + 1 + len >= sizeof resolved)
			return fail(f, "resolve %s: path too long", path);
		snprintf(resolved + before, sizeof resolved - before, "/%.*s", (int)len, p);
		p = end;
		if ((size_t)snprintf(full, sizeof full, "%s%s", root, resolved) >= sizeof full)
			return fail(f, "resolve %s: path too long", path);
		struct stat st;
		if (lstat(full, &st) < 0) {
			if (errno == ENOENT)
				continue;
			return fail_errno(f, errno, "resolve %s: lstat %s", path, full);
		}
		if (!S_ISLNK(st.st_mode))
			continue;
		if (++links > MAX_SYMLINKS)
			return fail_errno(f, ELOOP, "resolve %s", path);
		char target[PATH_MAX];
		ssize_t n = readlink(full, target, sizeof target - 1);
		if (n < 0)
			return fail_errno(f, errno, "resolve %s: readlink %s", path, full);
		target[n] = '\0';
		resolved[before] = '\0';
		if (target[0] == '/')
			resolved[0] = '\0';
		char rest[PATH_MAX];
		if ((size_t)snprintf(rest, sizeof rest, "%s/%s", target, p) >= sizeof rest)
			return fail(f, "resolve %s: path too long", path);
		memcpy(pending, rest, strlen(rest) + 1);
		p = pending;
	}
	if ((size_t)snprintf(out, outlen, "%s%s", root, resolved) >= outlen)
		return fail(f, "resolve %s: path too long", path);
	return 0;
}

static int mkdir_all(const char *path, struct failure *f)
{
	char tmp[PATH_MAX];
	if ((size_t)snprintf(tmp, sizeof tmp, "%s", path) >= sizeof tmp)
		return fail(f, "mkdir %s: path too long", path);
	for (char *p = tmp + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return fail_errno(f, errno, "mkdir %s", tmp);
		if (saved == '\0')
			return 0;
		*p = saved;
	}
}

static int create_file(const char *path, struct failure *f)
{
	char parent[PATH_MAX];
	snprintf(parent, sizeof parent, "%s", path);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		if (mkdir_all(parent, f) < 0)
			return -1;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0 && errno != EISDIR)
		return fail_errno(f, errno, "create %s", path);
	if (fd >= 0)
		close(fd);
	return 0;
}

/* A bind mount takes its options only on a remount. The remount must repeat the
 * nosuid/nodev/noexec flags the mount already has, or it would clear them. */
static int remount_bind(const char *target, unsigned long flags, struct failure *f)
{
	struct statvfs st;
	if (statvfs(target, &st) == 0) {
		if (st.f_flag & ST_NOSUID)
			flags |= MS_NOSUID;
		if (st.f_flag & ST_NODEV)
			flags |= MS_NODEV;
		if (st.f_flag & ST_NOEXEC)
			flags |= MS_NOEXEC;
	}
	flags &= ~(unsigned long)(MS_REC | PROPAGATION_FLAGS);
	if (mount(NULL, target, NULL, flags | MS_BIND | MS_REMOUNT, NULL) < 0)
		return fail_errno(f, errno, "remount %s", target);
	return 0;
}

static int do_spec_mount(const char *root, const struct mount_entry *m, struct failure *f)
{
	char target[PATH_MAX];
	if (resolve_in_root(root, m->target, target, sizeof target, f) < 0)
		return -1;
	unsigned long propagation = m->flags & PROPAGATION_FLAGS;
	unsigned long flags = m->flags & ~propagation;
	const char *data = m->data[0] ? m->data : NULL;

	if (flags & MS_BIND) {
		struct stat st;
		if (stat(m->source, &st) < 0)
			return fail_errno(f, errno, "mount %s: stat source %s", m->target, m->source);
		if (S_ISDIR(st.st_mode) ? mkdir_all(target, f) : create_file(target, f))
			return -1;
		if (mount(m->source, target, NULL, flags & (MS_BIND | MS_REC), NULL) < 0)
			return fail_errno(f, errno, "mount %s on %s", m->source, m->target);
		if ((flags & ~(unsigned long)(MS_BIND | MS_REC)) && remount_bind(target, flags, f) < 0)
			return -1;
	} else {
		if (mkdir_all(target, f) < 0)
			return -1;
		if (mount(m->source, target, m->fstype, flags, data) < 0)
			return fail_errno(f, errno, "mount %s (%s) on %s", m->source, m->fstype, m->target);
	}
	if (propagation && mount(NULL, target, NULL, propagation, NULL) < 0)
		return fail_errno(f, errno, "mount %s: set propagation", m->target);
	return 0;
}

int prepare_rootfs(const struct spec *s, struct failure *f)
{
	/* Nothing we mount may leak back to the host, but host mounts may still reach us. */
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		return fail_errno(f, errno, "make / rslave");
	/* pivot_root needs the new root to be a mount point. */
	if (mount(s->rootfs, s->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
		return fail_errno(f, errno, "bind rootfs %s", s->rootfs);
	for (size_t i = 0; i < s->nmounts; i++)
		if (do_spec_mount(s->rootfs, &s->mounts[i], f) < 0)
			return -1;
	return 0;
}

static const struct {
	const char *name;
	unsigned major, minor;
} devices[] = {
	{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
};

static const struct {
	const char *name, *target;
} dev_links[] = {
	{"fd", "/proc/self/fd"},         {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
	{"stderr", "/proc/self/fd/2"}, {"ptmx", "pts/ptmx"},
};

int create_devices(const char *root, struct failure *f)
{
	char dev[PATH_MAX], path[PATH_MAX + 32];
	if (resolve_in_root(root, "/dev", dev, sizeof dev, f) < 0 || mkdir_all(dev, f) < 0)
		return -1;
	for (size_t i = 0; i < sizeof devices / sizeof *devices; i++) {
		snprintf(path, sizeof path, "%s/%s", dev, devices[i].name);
		if (mknod(path, S_IFCHR | 0666, makedev(devices[i].major, devices[i].minor)) == 0 || errno == EEXIST)
			continue;
		if (errno != EPERM)
			return fail_errno(f, errno, "mknod %s", path);
		/* No CAP_MKNOD (e.g. a nested container): borrow the host's node. */
		char host[64];
		snprintf(host, sizeof host, "/dev/%s", devices[i].name);
		if (create_file(path, f) < 0)
			return -1;
		if (mount(host, path, NULL, MS_BIND, NULL) < 0)
			return fail_errno(f, errno, "bind %s", host);
	}
	for (size_t i = 0; i < sizeof dev_links / sizeof *dev_links; i++) {
		snprintf(path, sizeof path, "%s/%s", dev, dev_links[i].name);
		if (symlink(dev_links[i].target, path) < 0 && errno != EEXIST)
			return fail_errno(f, errno, "symlink %s", path);
	}
	return 0;
}

/* The pty comes from the container's own devpts instance (when the spec mounts one),
 * so the container sees its terminal as /dev/pts/0 and as /dev/console. */
int open_console(const char *root, int *master_out, int *slave_out, struct failure *f)
{
	char ptmx[PATH_MAX + 8], pts_dir[PATH_MAX], slave_path[PATH_MAX + 16], console[PATH_MAX];
	if (resolve_in_root(root, "/dev/pts", pts_dir, sizeof pts_dir, f) < 0)
		return -1;
	snprintf(ptmx, sizeof ptmx, "%s/ptmx", pts_dir);
	int master = open(ptmx, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0 && errno == ENOENT) {
		snprintf(pts_dir, sizeof pts_dir, "/dev/pts");
		master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	}
	if (master < 0)
		return fail_errno(f, errno, "open %s", ptmx);
	int unlock = 0;
	unsigned index;
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0 || ioctl(master, TIOCGPTN, &index) < 0) {
		fail_errno(f, errno, "console: unlock pty");
		close(master);
		return -1;
	}
	snprintf(slave_path, sizeof slave_path, "%s/%u", pts_dir, index);
	int slave = open(slave_path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0) {
		fail_errno(f, errno, "open %s", slave_path);
		close(master);
		return -1;
	}
	int rc = resolve_in_root(root, "/dev/console", console, sizeof console, f);
	if (rc == 0)
		rc = create_file(console, f);
	if (rc == 0 && mount(slave_path, console, NULL, MS_BIND, NULL) < 0)
		rc = fail_errno(f, errno, "bind console %s", slave_path);
	if (rc < 0) {
		close(master);
		close(slave);
		return -1;
	}
	*master_out = master;
	*slave_out = slave;
	return 0;
}

/* runc's sequence: pivot_root(".", ".") stacks the old root on top of the new one;
 * detaching it from there leaves only the new root. ramfs/initramfs roots cannot be
 * pivoted away from (EINVAL), so there the rootfs is moved over / and chrooted into. */
int enter_rootfs(const char *root, struct failure *f)
{
	int old_root = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (old_root < 0)
		return fail_errno(f, errno, "open /");
	int new_root = open(root, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (new_root < 0) {
		close(old_root);
		return fail_errno(f, errno, "open rootfs %s", root);
	}
	int rc = -1;
	if (fchdir(new_root) < 0) {
		fail_errno(f, errno, "chdir %s", root);
		goto out;
	}
	if (syscall(SYS_pivot_root, ".", ".") == 0) {
		if (fchdir(old_root) < 0) {
			fail_errno(f, errno, "pivot_root: chdir old root");
			goto out;
		}
		if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0) {
			fail_errno(f, errno, "pivot_root: make old root rslave");
			goto out;
		}
		if (umount2(".", MNT_DETACH) < 0) {
			fail_errno(f, errno, "pivot_root: detach old root");
			goto out;
		}
	} else if (errno == EINVAL) {
		if (mount(".", "/", NULL, MS_MOVE, NULL) < 0) {
			fail_errno(f, errno, "move rootfs to /");
			goto out;
		}
		if (chroot(".") < 0) {
			fail_errno(f, errno, "chroot %s", root);
			goto out;
		}
	} else {
		fail_errno(f, errno, "pivot_root %s", root);
		goto out;
	}
	if (chdir("/") < 0) {
		fail_errno(f, errno, "chdir /");
		goto out;
	}
	rc = 0;
out:
	close(old_root);
	close(new_root);
	return rc;
}

/* Runs inside the new root. Paths that do not exist in this image are skipped. */
int mask_and_protect_paths(const struct spec *s, struct failure *f)
{
	for (size_t i = 0; i < s->masked.count; i++) {
		const char *path = s->masked.items[i];
		struct stat st;
		if (stat(path, &st) < 0) {
			if (errno == ENOENT)
				continue;
			return fail_errno(f, errno, "mask %s", path);
		}
		int rc = S_ISDIR(st.st_mode) ? mount("tmpfs", path, "tmpfs", MS_RDONLY, NULL)
					     : mount("/dev/null", path, NULL, MS_BIND, NULL);
		if (rc < 0)
			return fail_errno(f, errno, "mask %s", path);
	}
	for (size_t i = 0; i < s->readonly.count; i++) {
		const char *path = s->readonly.items[i];
		if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0) {
			if (errno == ENOENT)
				continue;
			return fail_errno(f, errno, "readonly %s", path);
		}
		if (remount_bind(path, MS_RDONLY, f) < 0)
			return -1;
	}
	return 0;
}
