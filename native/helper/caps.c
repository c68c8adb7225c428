/* Capabilities: names, the bounding set, and capset. The kernel headers are not part of
 * every (musl) toolchain, so the few constants and structs are declared here. */
#define _GNU_SOURCE
#include "helper.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef PR_CAPBSET_READ
#define PR_CAPBSET_READ 23
#endif
#ifndef PR_CAPBSET_DROP
#define PR_CAPBSET_DROP 24
#endif

#define CAPABILITY_VERSION_3 0x20080522

struct cap_header {
	uint32_t version;
	int pid;
};

struct cap_data {
	uint32_t effective, permitted, inheritable;
};

/* Index = capability number (linux/capability.h). */
static const char *const cap_names[] = {
	"CHOWN",        "DAC_OVERRIDE",   "DAC_READ_SEARCH", "FOWNER",      "FSETID",
	"KILL",         "SETGID",         "SETUID",          "SETPCAP",     "LINUX_IMMUTABLE",
	"NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN",    "NET_RAW",     "IPC_LOCK",
	"IPC_OWNER",    "SYS_MODULE",     "SYS_RAWIO",       "SYS_CHROOT",  "SYS_PTRACE",
	"SYS_PACCT",    "SYS_ADMIN",      "SYS_BOOT",        "SYS_NICE",    "SYS_RESOURCE",
	"SYS_TIME",     "SYS_TTY_CONFIG", "MKNOD",           "LEASE",       "AUDIT_WRITE",
	"AUDIT_CONTROL", "SETFCAP",       "MAC_OVERRIDE",    "MAC_ADMIN",   "SYSLOG",
	"WAKE_ALARM",   "BLOCK_SUSPEND",  "AUDIT_READ",      "PERFMON",     "BPF",
	"CHECKPOINT_RESTORE",
};

/* "CAP_NET_RAW", "net_raw" or "13". Returns -1 when unknown. */
int cap_from_name(const char *name)
{
	if (isdigit((unsigned char)name[0])) {
		uint64_t n;
		return parse_u64(name, &n) == 0 && n < 64 ? (int)n : -1;
	}
	if (strncasecmp(name, "CAP_", 4) == 0)
		name += 4;
	for (size_t i = 0; i < sizeof cap_names / sizeof *cap_names; i++)
		if (strcasecmp(name, cap_names[i]) == 0)
			return (int)i;
	return -1;
}

/* The kernel may know fewer (old kernel) or more (new kernel) capabilities than our
 * table; ask it instead of trusting either. */
static int last_supported_cap(void)
{
	int last = -1;
	while (last < 63 && prctl(PR_CAPBSET_READ, last + 1, 0, 0, 0) >= 0)
		last++;
	return last;
}

/* Needs CAP_SETPCAP in the effective set, so it runs before setuid. */
int caps_drop_bounding(uint64_t keep, struct failure *f)
{
	int last = last_supported_cap();
	for (int cap = 0; cap <= last; cap++) {
		if (keep & ((uint64_t)1 << cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
			return fail_errno(f, errno, "capabilities: drop %d from the bounding set", cap);
	}
	return 0;
}

/* Effective and permitted = keep; inheritable empty (as Docker does since
 * CVE-2022-24769); ambient cleared. */
int caps_set_process(uint64_t keep, struct failure *f)
{
	int last = last_supported_cap();
	if (last < 63)
		keep &= ((uint64_t)1 << (last + 1)) - 1;
	struct cap_header header = {.version = CAPABILITY_VERSION_3, .pid = 0};
	struct cap_data data[2] = {
		{.effective = (uint32_t)keep, .permitted = (uint32_t)keep, .inheritable = 0},
		{.effective = (uint32_t)(keep >> 32), .permitted = (uint32_t)(keep >> 32), .inheritable = 0},
	};
	if (syscall(SYS_capset, &header, data) < 0)
		return fail_errno(f, errno, "capabilities: capset");
#ifdef PR_CAP_AMBIENT
	/* EINVAL: a kernel older than 4.3 has no ambient set, so nothing to clear. */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return fail_errno(f, errno, "capabilities: clear ambient");
#endif
	return 0;
}
