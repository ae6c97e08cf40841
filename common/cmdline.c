#include "cmdline.h"
#include "text.h"

#include <stdio.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	size_t len;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (len > n)
		return 0;
	return sbx_utf8_valid((const char *)p, len) ? len : 0;
}

static bool plain(const char *a)
{
	if (!a[0])
		return false;
	for (const unsigned char *p = (const unsigned char *)a; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == '\'' || *p == '\\')
			return false;
	return true;
}

/* The escape for one position of arg a: into e (at least 5 bytes), and how
 * many input bytes it stands for. */
static size_t escape_one(const unsigned char *p, size_t left, char *e, size_t *elen)
{
	size_t u;

	switch (*p) {
	case '\\': memcpy(e, "\\\\", 2); *elen = 2; return 1;
	case '"': memcpy(e, "\\\"", 2); *elen = 2; return 1;
	case '\n': memcpy(e, "\\n", 2); *elen = 2; return 1;
	case '\r': memcpy(e, "\\r", 2); *elen = 2; return 1;
	case '\t': memcpy(e, "\\t", 2); *elen = 2; return 1;
	}
	if (*p < 0x20 || *p == 0x7f) {
		snprintf(e, 5, "\\x%02x", *p);
		*elen = 4;
		return 1;
	}
	u = utf8_len(p, left);
	if (!u) {
		snprintf(e, 5, "\\x%02x", *p);
		*elen = 4;
		return 1;
	}
	memcpy(e, p, u);
	*elen = u;
	return u;
}

size_t sbx_cmdline_escape(char *const argv[], char *out, size_t outlen, bool *cut)
{
	/* Room kept for the " ...[N more bytes]" marker. */
	const size_t marker = 40;
	size_t room = outlen > marker ? outlen - marker - 1 : 0;
	size_t off = 0, skipped = 0;
	bool was_cut = false;

	out[0] = '\0';
	for (size_t i = 0; argv && argv[i]; i++) {
		const unsigned char *p = (const unsigned char *)argv[i];
		size_t n = strlen(argv[i]);

		if (was_cut) {
			skipped += n + 1;
			continue;
		}
		if (i > 0) {
			if (off + 1 > room) {
				was_cut = true;
				skipped += n + 1;
				continue;
			}
			out[off++] = ' ';
		}
		if (plain(argv[i])) {
			if (off + n <= room) {
				memcpy(out + off, p, n);
				off += n;
				continue;
			}
			/* A plain argument too long to fit: cut inside it. */
			memcpy(out + off, p, room - off);
			skipped += n - (room - off);
			off = room;
			was_cut = true;
			continue;
		}
		if (off + 1 > room) {
			was_cut = true;
			skipped += n;
			continue;
		}
		out[off++] = '"';
		while (*p) {
			char e[8];
			size_t elen, used = escape_one(p, n - (size_t)(p - (const unsigned char *)argv[i]),
						       e, &elen);

			/* + 1: the closing quote must still fit */
			if (off + elen + 1 > room) {
				was_cut = true;
				skipped += n - (size_t)(p - (const unsigned char *)argv[i]);
				break;
			}
			memcpy(out + off, e, elen);
			off += elen;
			p += used;
		}
		out[off++] = '"';
	}
	if (was_cut && outlen > marker)
		off += (size_t)snprintf(out + off, outlen - off, " ...[%zu more bytes]", skipped);
	out[off] = '\0';
	if (cut)
		*cut = was_cut;
	return off;
}

int sbx_cmdline_valid(const char *s)
{
	size_t n = strlen(s);

	if (!sbx_utf8_valid(s, n))
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}
