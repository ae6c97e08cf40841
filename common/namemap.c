/*
 * The name map (namemap.h).
 */
#include "namemap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t name_hash(const void *ns, const char *name)
{
	/* FNV-1a: the names come from root's policy file and the site's
	 * directory, so there is no adversary to out-guess; it only has to
	 * spread names well. */
	uint64_t h = 0xcbf29ce484222325ULL;
	uintptr_t v = (uintptr_t)ns;

	for (size_t i = 0; i < sizeof(v); i++) {
		h ^= (v >> (8 * i)) & 0xff;
		h *= 0x100000001b3ULL;
	}
	for (const unsigned char *s = (const unsigned char *)name; *s; s++) {
		h ^= *s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static struct sbx_namemap_slot *find_slot(const struct sbx_namemap_slot *slots, size_t cap,
					  const void *ns, const char *name, uint64_t h)
{
	size_t i = (size_t)h & (cap - 1);

	for (;;) {
		const struct sbx_namemap_slot *s = &slots[i];

		if (!s->name || (s->hash == h && s->ns == ns && strcmp(s->name, name) == 0))
			return (struct sbx_namemap_slot *)s;
		i = (i + 1) & (cap - 1);
	}
}

static int grow(struct sbx_namemap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 16;
	struct sbx_namemap_slot *slots = calloc(cap, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < m->cap; i++) {
		const struct sbx_namemap_slot *s = &m->slots[i];

		if (s->name)
			*find_slot(slots, cap, s->ns, s->name, s->hash) = *s;
	}
	free(m->slots);
	m->slots = slots;
	m->cap = cap;
	return 0;
}

int sbx_namemap_put(struct sbx_namemap *m, const void *ns, const char *name, void *val,
		    void **old)
{
	uint64_t h = name_hash(ns, name);
	struct sbx_namemap_slot *s;

	/* Keep the load at most one half so probes stay short. */
	if ((m->n + 1) * 2 > m->cap && grow(m) < 0)
		return -ENOMEM;
	s = find_slot(m->slots, m->cap, ns, name, h);
	if (s->name) {
		if (old)
			*old = s->val;
		return 1;
	}
	s->ns = ns;
	s->name = name;
	s->val = val;
	s->hash = h;
	m->n++;
	return 0;
}

void *sbx_namemap_get(const struct sbx_namemap *m, const void *ns, const char *name)
{
	const struct sbx_namemap_slot *s;

	if (!m || !m->cap || !name)
		return NULL;
	s = find_slot(m->slots, m->cap, ns, name, name_hash(ns, name));
	return s->name ? s->val : NULL;
}

bool sbx_namemap_has(const struct sbx_namemap *m, const void *ns, const char *name)
{
	const struct sbx_namemap_slot *s;

	if (!m || !m->cap || !name)
		return false;
	s = find_slot(m->slots, m->cap, ns, name, name_hash(ns, name));
	return s->name != NULL;
}

void sbx_namemap_free(struct sbx_namemap *m)
{
	if (!m)
		return;
	free(m->slots);
	m->slots = NULL;
	m->cap = m->n = 0;
}
