#include "config.h"

#include "audit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "journal.h"
#include "journal_read.h"
#include "seal.h"
#include "output.h"
#include "timeutil.h"
#include "text.h"

/* The columns text and CSV give their own place; everything else is
 * "the rest" (k=v in text, the details JSON in CSV).  prev and hash only
 * matter to the chain: jsonl keeps them. */
static const char *const fixed_keys[] = { "seq", "time", "event", "actor", "through",
					  "user", "role", "id", "prev", "hash", NULL };

static bool is_fixed(const char *key)
{
	for (size_t i = 0; fixed_keys[i]; i++)
		if (strcmp(fixed_keys[i], key) == 0)
			return true;
	return false;
}

int sbx_audit_parse_format(const char *s, enum sbx_audit_format *f)
{
	if (strcmp(s, "text") == 0)
		*f = SBX_AUDIT_TEXT;
	else if (strcmp(s, "jsonl") == 0)
		*f = SBX_AUDIT_JSONL;
	else if (strcmp(s, "csv") == 0)
		*f = SBX_AUDIT_CSV;
	else
		return -EINVAL;
	return 0;
}

/* A scalar member as text for a column: strings sanitized, numbers in
 * decimal, missing or null as NULL. */
static const char *scalar(const json_t *rec, const char *key, char *buf, size_t len)
{
	const json_t *v = json_object_get(rec, key);
	char *dump;

	if (!v || json_is_null(v))
		return NULL;
	if (json_is_string(v))
		return sbx_sanitize(json_string_value(v), buf, len);
	if (json_is_integer(v)) {
		snprintf(buf, len, "%lld", (long long)json_integer_value(v));
		return buf;
	}
	dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!dump)
		return NULL;
	sbx_sanitize(dump, buf, len);
	free(dump);
	return buf;
}

void sbx_audit_print_text(FILE *f, const json_t *rec)
{
	char b[7][SBX_STR_MAX + 1];
	const char *key;
	json_t *v;

#define COL(i, k) (scalar(rec, k, b[i], sizeof(b[i])) ?: "-")
	fprintf(f, "%-27s %6s %-18s %-10s %-10s %-16s %5s", COL(0, "time"), COL(1, "seq"),
		COL(2, "event"), COL(3, "actor"), COL(4, "user"), COL(5, "role"), COL(6, "id"));
#undef COL
	json_object_foreach((json_t *)rec, key, v) {
		if (is_fixed(key) && strcmp(key, "through") != 0)
			continue;
		fputc(' ', f);
		sbx_sanitize(key, b[0], sizeof(b[0]));
		fputs(b[0], f);
		fputc('=', f);
		sbx_out_kv_value(f, v);
	}
	fputc('\n', f);
}

static void print_csv_header(FILE *f)
{
	fputs("seq,time,event,actor,through,user,role,id,details\r\n", f);
}

static int print_csv(FILE *f, const json_t *rec)
{
	static const char *const cols[] = { "seq", "time", "event", "actor", "through",
					    "user", "role", "id" };
	char buf[SBX_STR_MAX + 1];
	json_t *details = json_object();
	const char *key;
	char *dump = NULL, *san = NULL;
	json_t *v;
	int ret = -1;

	if (!details)
		goto out;
	for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) {
		sbx_out_csv_field(f, scalar(rec, cols[i], buf, sizeof(buf)));
		fputc(',', f);
	}
	json_object_foreach((json_t *)rec, key, v) {
		if (!is_fixed(key) && json_object_set(details, key, v) < 0)
			goto out;
	}
	dump = json_dumps(details, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!dump)
		goto out;
	san = malloc(strlen(dump) + 1);
	if (!san)
		goto out;
	sbx_out_csv_field(f, sbx_sanitize(dump, san, strlen(dump) + 1));
	fputs("\r\n", f);
	ret = 0;
out:
	free(san);
	free(dump);
	json_decref(details);
	return ret;
}

struct query_ctx {
	const struct sbx_audit_query *q;
	const char *needle;     /* a line without it cannot match (NULL: none) */
	size_t needle_len;
	char host[256];         /* the host of the last broker.started */
	uint64_t matched;
};

static int print_match(struct query_ctx *x, const json_t *rec, const char *line, size_t linelen)
{
	char *dump;

	switch (x->q->format) {
	case SBX_AUDIT_JSONL:
		fwrite(line, 1, linelen, stdout);
		fputc('\n', stdout);
		break;
	case SBX_AUDIT_JSON:
		/* ASCII, as the journal is: no requester's C1 control or
		 * bidi override reaches a terminal (audit_tail.c). */
		dump = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
		if (!dump)
			return -1;
		printf("%s%s", x->matched ? ",\n" : "", dump);
		free(dump);
		break;
	case SBX_AUDIT_CSV:
		if (print_csv(stdout, rec) < 0)
			return -1;
		break;
	case SBX_AUDIT_TEXT:
		sbx_audit_print_text(stdout, rec);
		break;
	}
	x->matched++;
	return 0;
}

#define STARTED_TEXT "\"event\":\"broker.started\""

/* One line of the journal: ruled out by its text when it can be, else
 * parsed, matched, printed and freed before the next. */
static int on_line(const char *line, size_t len, void *arg, char *err, size_t errlen)
{
	struct query_ctx *x = arg;
	const struct sbx_rec_filter *f = &x->q->f;
	json_t *rec;
	int rc = 0;

	if (x->needle && !memmem(line, len, x->needle, x->needle_len) &&
	    !(f->host && memmem(line, len, STARTED_TEXT, sizeof(STARTED_TEXT) - 1)))
		return 0;
	rec = sbx_journal_line_parse(line, len, err, errlen);
	if (!rec) {
		/* Not ours to judge (audit verify is): say where and go on. */
		fprintf(stderr, "sbxctl: skipping an unreadable journal line (seq %llu): %s\n",
			(unsigned long long)sbx_journal_line_seq(line, len), err);
		err[0] = '\0';
		return 0;
	}
	if (f->host)
		sbx_rec_track_host(rec, x->host, sizeof(x->host));
	if (sbx_rec_filter_match(rec, f, x->host[0] ? x->host : NULL) &&
	    print_match(x, rec, line, len) < 0) {
		snprintf(err, errlen, "out of memory");
		rc = -1;
	}
	json_decref(rec);
	/* A reader that went away (| head) ends the query. */
	if (rc == 0 && ferror(stdout))
		rc = 1;
	return rc;
}

int sbx_audit_check_dir(const struct sbx_cli *c, const char *state_dir)
{
	char path[4096];
	DIR *d;

	if (snprintf(path, sizeof(path), "%s/journal", state_dir) >= (int)sizeof(path)) {
		sbx_cli_error(c, "state directory path is too long");
		return SBX_EXIT_USAGE;
	}
	d = opendir(path);
	if (d) {
		closedir(d);
		return SBX_EXIT_OK;
	}
	if (errno == ENOENT)
		sbx_cli_error(c, "no journal in %s: %s does not exist (the broker's state "
			      "directory is broker.state_dir in its policy; see --state-dir or "
			      "--config)", state_dir, path);
	else
		sbx_cli_error(c, "cannot read the journal in %s: %s (the journal is readable by "
			      "root only: run as root)", path, strerror(errno));
	return SBX_EXIT_USAGE;
}

int sbx_audit_verify(const struct sbx_cli *c, const char *state_dir)
{
	return sbx_audit_verify_run(c, state_dir, NULL, false, false, NULL, 0);
}

int sbx_audit_query(const struct sbx_cli *c, const char *state_dir,
		    const struct sbx_audit_query *q)
{
	struct query_ctx x = { .q = q };
	char err[1024] = "", san[1024], needle[SBX_STR_MAX + 3];
	int rc;

	rc = sbx_audit_check_dir(c, state_dir);
	if (rc)
		return rc;
	if (q->format == SBX_AUDIT_CSV)
		print_csv_header(stdout);
	else if (q->format == SBX_AUDIT_JSON)
		fputs("[\n", stdout);
	x.needle = sbx_rec_filter_needle(&q->f, needle, sizeof(needle));
	x.needle_len = x.needle ? strlen(x.needle) : 0;
	rc = sbx_journal_lines(state_dir, 0, on_line, &x, err, sizeof(err));
	if (q->format == SBX_AUDIT_JSON)
		fputs(x.matched ? "\n]\n" : "]\n", stdout);
	if (rc < 0) {
		sbx_cli_error(c, "reading the journal in %s failed: %s", state_dir,
			      sbx_sanitize(err[0] ? err : "unknown error", san, sizeof(san)));
		return SBX_EXIT_REFUSED;
	}
	return SBX_EXIT_OK;
}

/* ---- sealing (docs/audit.md, "Sealing") ---- */

/* A running broker holds the key in memory and would overwrite a new key
 * file with its own at the next seal: init only while it is stopped. */
static int broker_running(const char *state_dir, bool *running, char *why, size_t whylen)
{
	char path[4096];
	int fd;

	*running = false;
	if (snprintf(path, sizeof(path), "%s/journal/.lock", state_dir) >= (int)sizeof(path)) {
		snprintf(why, whylen, "state directory path is too long");
		return -1;
	}
	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return 0;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK)
		*running = true;
	close(fd);
	return 0;
}

static int write_vkey_file(const char *path, const char *text, char *why, size_t whylen)
{
	size_t len = strlen(text);
	int fd, ret = -1;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(why, whylen, "cannot create %s: %s%s", path, strerror(errno),
			 errno == EEXIST ? " (it is not overwritten: remove it or choose another)" : "");
		return -1;
	}
	if (write(fd, text, len) != (ssize_t)len || fsync(fd) < 0)
		snprintf(why, whylen, "cannot write %s: %s", path, strerror(errno));
	else
		ret = 0;
	close(fd);
	if (ret < 0)
		(void)unlink(path);
	return ret;
}

int sbx_audit_init(const struct sbx_cli *c, const char *state_dir, const char *out, bool force)
{
	struct sbx_seal_state old, st;
	struct sbx_seal_vkey vk;
	char why[1024], san[1024], text[256];
	bool running;
	int rc, ret = SBX_EXIT_REFUSED;

	memset(&vk, 0, sizeof(vk));
	memset(&st, 0, sizeof(st));
	if (mkdir(state_dir, 0700) < 0 && errno != EEXIST) {
		sbx_cli_error(c, "cannot create %s: %s", state_dir, strerror(errno));
		return SBX_EXIT_USAGE;
	}
	if (broker_running(state_dir, &running, why, sizeof(why)) < 0) {
		sbx_cli_error(c, "%s", why);
		return SBX_EXIT_USAGE;
	}
	if (running) {
		sbx_cli_error(c, "the broker is running on %s: stop it first (it holds the current "
			      "key and would overwrite a new one)", state_dir);
		return SBX_EXIT_REFUSED;
	}
	rc = sbx_seal_state_read(state_dir, &old, why, sizeof(why));
	if (rc == 0 && !force) {
		sbx_cli_error(c, "%s/" SBX_SEAL_KEY_FILE " exists (key %s, epoch %llu): the journal "
			      "is sealed already.  --force starts a new key; the broker records the "
			      "replacement when it next starts, and the old key's seals end there",
			      state_dir, old.key_id, (unsigned long long)old.epoch);
		goto out;
	}
	if (rc < 0 && rc != -ENOENT && !force) {
		sbx_cli_error(c, "%s (--force replaces it)", sbx_sanitize(why, san, sizeof(san)));
		goto out;
	}
	if (sbx_seal_vkey_new(&vk, why, sizeof(why)) < 0) {
		sbx_cli_error(c, "%s", why);
		goto out;
	}
	sbx_seal_state_init(&st, &vk);
	if (rc == 0) {
		memcpy(st.replaces, old.key_id, sizeof(st.replaces));
		st.replaces_epoch = old.epoch;
	}
	sbx_seal_vkey_format(&vk, text, sizeof(text));
	/* The auditors' copy first: a key on the host that nobody can verify
	 * against is worth nothing. */
	if (out && write_vkey_file(out, text, why, sizeof(why)) < 0) {
		sbx_cli_error(c, "%s", sbx_sanitize(why, san, sizeof(san)));
		goto out;
	}
	if (sbx_seal_state_write(state_dir, &st, why, sizeof(why)) < 0) {
		sbx_cli_error(c, "%s", sbx_sanitize(why, san, sizeof(san)));
		goto out;
	}
	fputs(text, stdout);
	fprintf(stderr, "%s: sealing key %s created in %s/" SBX_SEAL_KEY_FILE ".  The line above "
		"is the verification key: give it to the auditors and keep it off this host "
		"(sbxctl audit verify --key FILE checks the journal with it); it is not shown "
		"again.%s\n", c->prog, vk.key_id, state_dir,
		rc == 0 ? "  The old key's seals end at the replacement, which the broker "
		"records when it next starts." : "");
	ret = SBX_EXIT_OK;
out:
	OPENSSL_cleanse(text, sizeof(text));
	OPENSSL_cleanse(&vk, sizeof(vk));
	sbx_seal_state_wipe(&st);
	sbx_seal_state_wipe(&old);
	return ret;
}

int sbx_audit_verify_sealed(const struct sbx_cli *c, const char *state_dir, const char *key_file,
			    bool no_host_key)
{
	return sbx_audit_verify_run(c, state_dir, key_file, no_host_key, false, NULL, 0);
}
