/*
 * sbxctl audit verify: the journal's chain, its seals (--key), the anchor
 * a pruned journal starts from, and checkpoints kept off the host
 * (--checkpoint), in one pass (journal/verify.h; docs/audit.md).
 */
#include "config.h"

#include "audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "output.h"
#include "seal.h"
#include "text.h"
#include "verify.h"

/* Each --checkpoint is SEQ:HASH or a file of them. */
static int load_checkpoints(const struct sbx_cli *c, const char *const *args, size_t nargs,
			    struct sbx_checkpoint **cps, size_t *n)
{
	char why[512], san[512];

	for (size_t i = 0; i < nargs; i++) {
		struct sbx_checkpoint cp;

		if (args[i][0] >= '0' && args[i][0] <= '9' && strchr(args[i], ':')) {
			if (sbx_checkpoint_parse(args[i], &cp, why, sizeof(why)) < 0)
				return sbx_cli_usage(c, "audit verify", "bad --checkpoint \"%s\": %s "
						     "(give SEQ:HASH, or a file of them)",
						     sbx_sanitize(args[i], san, sizeof(san)), why);
			if (sbx_checkpoint_add(cps, n, &cp) < 0) {
				sbx_cli_error(c, "out of memory");
				return SBX_EXIT_REFUSED;
			}
		} else if (sbx_checkpoint_read_file(args[i], cps, n, why, sizeof(why)) < 0) {
			return sbx_cli_usage(c, "audit verify", "bad --checkpoint: %s",
					     sbx_sanitize(why, san, sizeof(san)));
		}
	}
	return SBX_EXIT_OK;
}

static void print_start(const struct sbx_verify_result *r)
{
	if (r->anchor_seq)
		printf("started from an anchor: seqs 1..%llu were pruned, as the journal.pruned "
		       "record at seq %llu says (the hash it names is the prev of seq %llu)\n",
		       (unsigned long long)(r->first_seq - 1), (unsigned long long)r->anchor_seq,
		       (unsigned long long)r->first_seq);
}

static void print_checkpoints(const struct sbx_verify_result *r, size_t ncps)
{
	if (!ncps)
		return;
	printf("checkpoints: %llu of %zu found with their hash: nothing up to them was cut or "
	       "rewritten\n", (unsigned long long)r->checkpoints_ok, ncps);
	if (r->checkpoints_pruned)
		printf("%llu checkpoints lie before seq %llu, in the pruned range: not checkable\n",
		       (unsigned long long)r->checkpoints_pruned, (unsigned long long)r->first_seq);
}

static void print_chain(const struct sbx_verify_result *r, size_t ncps)
{
	printf("journal intact: %llu records, last seq %llu (hash chain only: without --key the "
	       "seals are not checked, so a journal rewritten and re-hashed, or cut at the end, "
	       "would pass too)\n", (unsigned long long)r->records,
	       (unsigned long long)r->last_seq);
	print_start(r);
	print_checkpoints(r, ncps);
}

static void print_sealed(const struct sbx_seal_vkey *vk, const struct sbx_verify_result *r,
			 size_t ncps)
{
	const struct sbx_seal_summary *s = &r->seal;

	printf("journal intact and sealed: %llu records, last seq %llu; %llu seals with key %s",
	       (unsigned long long)r->records, (unsigned long long)r->last_seq,
	       (unsigned long long)s->seals, vk->key_id);
	if (s->seals)
		printf(" (epochs %s%llu), everything up to seq %llu proven",
		       r->anchor_seq ? "..": "0..", (unsigned long long)s->last_epoch,
		       (unsigned long long)s->sealed_through);
	printf("\n");
	print_start(r);
	if (s->unsealed)
		printf("%llu records after seq %llu are not sealed yet (the current epoch; after a "
		       "crash the broker seals them when it starts): nothing proves them yet\n",
		       (unsigned long long)s->unsealed, (unsigned long long)s->sealed_through);
	if (s->other_seals)
		printf("%llu seals made with other keys were not checked\n",
		       (unsigned long long)s->other_seals);
	if (!s->host_checked)
		printf("the host's key file was not compared (--no-host-key): records cut from the "
		       "end together with their seals would not show\n");
	if (s->fleet_exempt)
		printf("%llu records copied from a fleet's log (first seq %llu) keep that log's "
		       "time and were not checked for back-dating: `sbxctl fleet verify` compares "
		       "them with the fleet's log; for a host that was never in a fleet, "
		       "--standalone checks them like any other\n",
		       (unsigned long long)s->fleet_exempt, (unsigned long long)s->fleet_first);
	print_checkpoints(r, ncps);
}

static json_t *result_json(const char *state_dir, const struct sbx_seal_vkey *vk,
			   const struct sbx_verify_result *r, bool ok, const char *err)
{
	json_t *j = json_pack("{s:b, s:s, s:I, s:I, s:I}", "intact", ok, "state_dir", state_dir,
			      "records", (json_int_t)r->records, "first_seq",
			      (json_int_t)r->first_seq, "last_seq", (json_int_t)r->last_seq);
	int bad = 0;

	if (!j)
		return NULL;
	if (r->anchor_seq)
		bad |= json_object_set_new(j, "anchor_seq", json_integer((json_int_t)r->anchor_seq));
	bad |= json_object_set_new(j, "checkpoints_ok", json_integer((json_int_t)r->checkpoints_ok));
	bad |= json_object_set_new(j, "checkpoints_pruned",
				   json_integer((json_int_t)r->checkpoints_pruned));
	if (vk) {
		bad |= json_object_set_new(j, "key_id", json_string(vk->key_id));
		if (ok) {
			const struct sbx_seal_summary *s = &r->seal;

			bad |= json_object_set_new(j, "sealed", json_true());
			bad |= json_object_set_new(j, "seals", json_integer((json_int_t)s->seals));
			bad |= json_object_set_new(j, "sealed_through",
						   json_integer((json_int_t)s->sealed_through));
			bad |= json_object_set_new(j, "unsealed", json_integer((json_int_t)s->unsealed));
			bad |= json_object_set_new(j, "other_seals",
						   json_integer((json_int_t)s->other_seals));
			bad |= json_object_set_new(j, "host_key_checked", json_boolean(s->host_checked));
			bad |= json_object_set_new(j, "fleet_copies_unchecked",
						   json_integer((json_int_t)s->fleet_exempt));
		}
	}
	if (!ok) {
		bad |= json_object_set_new(j, "bad_seq", json_integer((json_int_t)r->bad_seq));
		bad |= json_object_set_new(j, "error", json_string(err));
		if (r->bad_checkpoint)
			bad |= json_object_set_new(j, "bad_checkpoint",
						   json_integer((json_int_t)r->bad_checkpoint));
	}
	if (bad) {
		json_decref(j);
		return NULL;
	}
	return j;
}

int sbx_audit_verify_run(const struct sbx_cli *c, const char *state_dir, const char *key_file,
			 bool no_host_key, bool standalone, const char *const *checkpoints,
			 size_t ncheckpoints)
{
	struct sbx_verify_opts o = { .state_dir = state_dir, .no_host_key = no_host_key,
				     .standalone = standalone };
	struct sbx_checkpoint *cps = NULL;
	struct sbx_verify_result r;
	struct sbx_seal_vkey vk;
	char err[1024] = "", san[1024];
	size_t ncps = 0;
	json_t *j;
	bool ok;
	int rc;

	memset(&vk, 0, sizeof(vk));
	rc = sbx_audit_check_dir(c, state_dir);
	if (rc)
		return rc;
	rc = load_checkpoints(c, checkpoints, ncheckpoints, &cps, &ncps);
	if (rc)
		goto out;
	if (key_file) {
		if (sbx_seal_vkey_read(key_file, &vk, err, sizeof(err)) < 0) {
			sbx_cli_error(c, "%s", sbx_sanitize(err, san, sizeof(san)));
			rc = SBX_EXIT_USAGE;
			goto out;
		}
		o.vk = &vk;
	}
	o.cps = cps;
	o.ncps = ncps;
	ok = sbx_journal_audit(&o, &r, err, sizeof(err)) == 0;
	sbx_sanitize(err, san, sizeof(san));
	rc = ok ? SBX_EXIT_OK : SBX_EXIT_REFUSED;
	if (c->json) {
		j = result_json(state_dir, o.vk, &r, ok, san);
		if (!j || sbx_out_print_json(stdout, j) < 0) {
			sbx_cli_error(c, "out of memory");
			rc = SBX_EXIT_REFUSED;
		}
		json_decref(j);
	} else if (!ok) {
		printf("journal BROKEN at seq %llu: %s\n", (unsigned long long)r.bad_seq, san);
	} else if (o.vk) {
		print_sealed(&vk, &r, ncps);
	} else {
		print_chain(&r, ncps);
	}
out:
	free(cps);
	OPENSSL_cleanse(&vk, sizeof(vk));
	return rc;
}
