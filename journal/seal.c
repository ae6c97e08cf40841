/*
 * Forward-secure sealing (seal.h; the format is in docs/audit.md,
 * "Sealing").  Key material lives in fixed buffers and is wiped with
 * OPENSSL_cleanse as soon as it is no longer needed.
 */
#include "config.h"

#include "seal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define EVOLVE_LABEL "sbx-seal-evolve"
#define ID_LABEL "sbx-seal-id"
#define VKEY_TAG "sbxseal1"
#define STATE_TAG "sbxsealkey1"
/* Both key files are one short line. */
#define KEYFILE_MAX 512

static void to_hex(const uint8_t *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Exactly 2n lowercase hex digits. */
static int from_hex(const char *s, uint8_t *out, size_t n)
{
	if (!s || strlen(s) != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static void hmac(const uint8_t key[SBX_SEAL_KEY_LEN], const void *msg, size_t len,
		 uint8_t out[SBX_SEAL_KEY_LEN])
{
	unsigned int outlen = SBX_SEAL_KEY_LEN;

	HMAC(EVP_sha256(), key, SBX_SEAL_KEY_LEN, msg, len, out, &outlen);
}

void sbx_seal_evolve(uint8_t key[SBX_SEAL_KEY_LEN], uint64_t i)
{
	uint8_t msg[sizeof(EVOLVE_LABEL) - 1 + 8], next[SBX_SEAL_KEY_LEN];

	memcpy(msg, EVOLVE_LABEL, sizeof(EVOLVE_LABEL) - 1);
	for (int k = 0; k < 8; k++)
		msg[sizeof(EVOLVE_LABEL) - 1 + k] = (uint8_t)(i >> (56 - 8 * k));
	hmac(key, msg, sizeof(msg), next);
	memcpy(key, next, SBX_SEAL_KEY_LEN);
	OPENSSL_cleanse(next, sizeof(next));
}

void sbx_seal_derive(const uint8_t k0[SBX_SEAL_KEY_LEN], uint64_t epoch,
		     uint8_t out[SBX_SEAL_KEY_LEN])
{
	memcpy(out, k0, SBX_SEAL_KEY_LEN);
	for (uint64_t i = 0; i < epoch; i++)
		sbx_seal_evolve(out, i);
}

void sbx_seal_key_id(const uint8_t k0[SBX_SEAL_KEY_LEN], char id[SBX_SEAL_ID_LEN + 1])
{
	uint8_t buf[sizeof(ID_LABEL) - 1 + SBX_SEAL_KEY_LEN], d[SHA256_DIGEST_LENGTH];

	memcpy(buf, ID_LABEL, sizeof(ID_LABEL) - 1);
	memcpy(buf + sizeof(ID_LABEL) - 1, k0, SBX_SEAL_KEY_LEN);
	SHA256(buf, sizeof(buf), d);
	OPENSSL_cleanse(buf, sizeof(buf));
	to_hex(d, SBX_SEAL_ID_LEN / 2, id);
}

int sbx_seal_mac(const uint8_t key[SBX_SEAL_KEY_LEN], const struct sbx_seal_fields *f,
		 char mac[65])
{
	uint8_t out[SBX_SEAL_KEY_LEN];
	char msg[640];
	int n;

	if (!f->key_id || !f->from || !f->until || !f->head || !f->why)
		return -1;
	/* Text, one field a line, so an auditor can recompute it with
	 * `openssl mac` (docs/audit.md). */
	n = snprintf(msg, sizeof(msg),
		     "sbx-seal-v1\nkey_id=%s\nepoch=%" PRIu64 "\nfirst_seq=%" PRIu64
		     "\nlast_seq=%" PRIu64 "\nfrom=%s\nuntil=%s\nhead=%s\nwhy=%s\n",
		     f->key_id, f->epoch, f->first_seq, f->last_seq, f->from, f->until, f->head,
		     f->why);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return -1;
	hmac(key, msg, (size_t)n, out);
	to_hex(out, sizeof(out), mac);
	return 0;
}

/* ---- key files ---- */

int sbx_seal_vkey_new(struct sbx_seal_vkey *vk, char *why, size_t whylen)
{
	if (RAND_priv_bytes(vk->k0, sizeof(vk->k0)) != 1) {
		snprintf(why, whylen, "no random bytes for the key (RAND_priv_bytes failed)");
		return -EIO;
	}
	sbx_seal_key_id(vk->k0, vk->key_id);
	sbx_format_rfc3339_us(sbx_now_us(), vk->created);
	return 0;
}

void sbx_seal_vkey_format(const struct sbx_seal_vkey *vk, char *buf, size_t len)
{
	char hex[2 * SBX_SEAL_KEY_LEN + 1];

	to_hex(vk->k0, sizeof(vk->k0), hex);
	snprintf(buf, len, VKEY_TAG ":%s:%s:%s\n", vk->key_id, vk->created, hex);
	OPENSSL_cleanse(hex, sizeof(hex));
}

/* A key file: no link, a regular file, nobody else may read it, small.
 * The trailing newline is dropped. */
static int read_keyfile(const char *path, char *buf, size_t cap, char *why, size_t whylen)
{
	struct stat sb;
	ssize_t n;
	int fd, ret = -EINVAL;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(why, whylen, "cannot open %s: %s", path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		snprintf(why, whylen, "%s is not a regular file", path);
		goto out;
	}
	if (sb.st_mode & 077) {
		snprintf(why, whylen, "%s holds a key but group or others may use it (mode %04o): "
			 "chmod 600 it", path, (unsigned)(sb.st_mode & 07777));
		goto out;
	}
	n = read(fd, buf, cap - 1);
	if (n < 0 || (size_t)n >= cap - 1) {
		snprintf(why, whylen, "cannot read %s%s", path, n < 0 ? "" : ": too long");
		goto out;
	}
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	ret = 0;
out:
	close(fd);
	return ret;
}

int sbx_seal_vkey_read(const char *path, struct sbx_seal_vkey *vk, char *why, size_t whylen)
{
	const size_t tag = sizeof(VKEY_TAG); /* "sbxseal1:" */
	char buf[KEYFILE_MAX], *id, *created, *key;
	int rc = read_keyfile(path, buf, sizeof(buf), why, whylen);

	if (rc < 0)
		return rc;
	rc = -EINVAL;
	/* sbxseal1:<16 hex>:<time, which holds colons>:<64 hex> */
	id = buf + tag;
	key = strrchr(buf, ':');
	if (strlen(buf) < tag + SBX_SEAL_ID_LEN + 2 || strncmp(buf, VKEY_TAG ":", tag) != 0 ||
	    id[SBX_SEAL_ID_LEN] != ':' || !key || key <= id + SBX_SEAL_ID_LEN + 1)
		goto bad;
	id[SBX_SEAL_ID_LEN] = '\0';
	created = id + SBX_SEAL_ID_LEN + 1;
	*key++ = '\0';
	if (strlen(created) >= sizeof(vk->created) || from_hex(key, vk->k0, sizeof(vk->k0)) < 0)
		goto bad;
	memcpy(vk->created, created, strlen(created) + 1);
	sbx_seal_key_id(vk->k0, vk->key_id);
	if (strcmp(vk->key_id, id) != 0) {
		snprintf(why, whylen, "%s: the key id %s does not match its key (a damaged copy?)",
			 path, id);
		goto out;
	}
	rc = 0;
	goto out;
bad:
	snprintf(why, whylen, "%s is not a verification key (" VKEY_TAG ":ID:TIME:KEY, as "
		 "sbxctl audit init printed it)", path);
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	if (rc < 0)
		OPENSSL_cleanse(vk->k0, sizeof(vk->k0));
	return rc;
}

void sbx_seal_state_init(struct sbx_seal_state *st, const struct sbx_seal_vkey *vk)
{
	memset(st, 0, sizeof(*st));
	memcpy(st->key_id, vk->key_id, sizeof(st->key_id));
	memcpy(st->key, vk->k0, sizeof(st->key));
	memcpy(st->from, vk->created, sizeof(st->from));
	st->first_seq = 1;
}

static int state_path(const char *dir, const char *suffix, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/" SBX_SEAL_KEY_FILE "%s", dir, suffix);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int sbx_seal_state_read(const char *state_dir, struct sbx_seal_state *st, char *why,
			size_t whylen)
{
	char path[4096], buf[KEYFILE_MAX], tag[16], id[32], from[64], key[80], rid[32] = "";
	unsigned long long epoch, first, repoch = 0;
	int rc, n;

	memset(st, 0, sizeof(*st));
	if (state_path(state_dir, "", path, sizeof(path)) < 0) {
		snprintf(why, whylen, "state dir path too long");
		return -ENAMETOOLONG;
	}
	rc = read_keyfile(path, buf, sizeof(buf), why, whylen);
	if (rc < 0)
		return rc;
	n = sscanf(buf, "%15s %31s %llu %63s %llu %79s %31s %llu", tag, id, &epoch, from, &first,
		   key, rid, &repoch);
	rc = -EINVAL;
	if ((n != 6 && n != 8) || strcmp(tag, STATE_TAG) != 0 || strlen(id) != SBX_SEAL_ID_LEN ||
	    strlen(from) >= sizeof(st->from) || from_hex(key, st->key, sizeof(st->key)) < 0 ||
	    (n == 8 && strlen(rid) != SBX_SEAL_ID_LEN)) {
		snprintf(why, whylen, "%s is damaged (not a sealing key file)", path);
		goto out;
	}
	memcpy(st->key_id, id, sizeof(st->key_id));
	memcpy(st->from, from, strlen(from) + 1);
	st->epoch = epoch;
	st->first_seq = first;
	if (n == 8) {
		memcpy(st->replaces, rid, sizeof(st->replaces));
		st->replaces_epoch = repoch;
	}
	rc = 0;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	OPENSSL_cleanse(key, sizeof(key));
	if (rc < 0)
		sbx_seal_state_wipe(st);
	return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int sbx_seal_state_write(const char *state_dir, const struct sbx_seal_state *st, char *why,
			 size_t whylen)
{
	char path[4096], tmp[4096], hex[2 * SBX_SEAL_KEY_LEN + 1], line[KEYFILE_MAX];
	int fd = -1, dfd = -1, rc = -EIO, n;

	if (state_path(state_dir, "", path, sizeof(path)) < 0 ||
	    state_path(state_dir, ".tmp", tmp, sizeof(tmp)) < 0) {
		snprintf(why, whylen, "state dir path too long");
		return -ENAMETOOLONG;
	}
	to_hex(st->key, sizeof(st->key), hex);
	if (st->replaces[0])
		n = snprintf(line, sizeof(line), STATE_TAG " %s %" PRIu64 " %s %" PRIu64 " %s %s %"
			     PRIu64 "\n", st->key_id, st->epoch, st->from, st->first_seq, hex,
			     st->replaces, st->replaces_epoch);
	else
		n = snprintf(line, sizeof(line), STATE_TAG " %s %" PRIu64 " %s %" PRIu64 " %s\n",
			     st->key_id, st->epoch, st->from, st->first_seq, hex);
	OPENSSL_cleanse(hex, sizeof(hex));
	(void)unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		snprintf(why, whylen, "cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (write_all(fd, line, (size_t)n) < 0 || fsync(fd) < 0) {
		rc = -errno;
		snprintf(why, whylen, "cannot write %s: %s", tmp, strerror(errno));
		(void)unlink(tmp);
		goto out;
	}
	/* The rename replaces the old key in one step; syncing the directory
	 * makes the replacement survive a crash. */
	if (rename(tmp, path) < 0) {
		rc = -errno;
		snprintf(why, whylen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		(void)unlink(tmp);
		goto out;
	}
	dfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0) {
		rc = -errno;
		snprintf(why, whylen, "cannot sync %s: %s", state_dir, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(line, sizeof(line));
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	return rc;
}

void sbx_seal_state_advance(struct sbx_seal_state *st, const char *until, uint64_t first_seq)
{
	sbx_seal_evolve(st->key, st->epoch);
	st->epoch++;
	snprintf(st->from, sizeof(st->from), "%s", until);
	st->first_seq = first_seq;
}

void sbx_seal_state_wipe(struct sbx_seal_state *st)
{
	OPENSSL_cleanse(st->key, sizeof(st->key));
}
