/*
 * A hash map from names to values, for the policy's index and for reading
 * a directory: every name lookup on the login path is one probe.  Libc
 * only; not for the PAM and NSS modules (they never need one).
 */
#ifndef SBX_NAMEMAP_H
#define SBX_NAMEMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An open-addressing hash map from (ns, name) to a value.  ns separates
 * namespaces inside one map: the membership map uses the address of the
 * list a name is on, so "is alice on this list?" is one probe.  Names are
 * borrowed, not copied: they must outlive the map. */
struct sbx_namemap_slot {
	const void *ns;
	const char *name;
	void *val;
	uint64_t hash;
};

struct sbx_namemap {
	struct sbx_namemap_slot *slots;
	size_t cap; /* 0 or a power of two */
	size_t n;
};

/* 0 when added, 1 when (ns, name) was already there (the map is unchanged
 * and *old, if not NULL, gets the existing value), -ENOMEM. */
int sbx_namemap_put(struct sbx_namemap *m, const void *ns, const char *name, void *val,
		    void **old);
void *sbx_namemap_get(const struct sbx_namemap *m, const void *ns, const char *name);
bool sbx_namemap_has(const struct sbx_namemap *m, const void *ns, const char *name);
void sbx_namemap_free(struct sbx_namemap *m);

#endif
