/*
 * What sbx-request and sbxctl share: command-line parsing (global options,
 * subcommands, help), talking to the broker, and turning a reply's STATUS
 * or a transport error into an exit code and one line on stderr.
 *
 * Exit codes are a contract with scripts and are the same in both tools
 * (see docs/cli.md):
 *   0 done, 1 refused or denied, 2 usage or bad input, 3 broker
 *   unreachable (nothing was sent), 4 timed out waiting, 5 outcome
 *   unknown (a change was sent and no answer came).
 */
#ifndef SBX_CLI_CLIENT_H
#define SBX_CLI_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "output.h"
#include "sbx_proto.h"

enum sbx_exit {
	SBX_EXIT_OK = 0,
	SBX_EXIT_REFUSED = 1,
	SBX_EXIT_USAGE = 2,
	SBX_EXIT_UNREACHABLE = 3,
	SBX_EXIT_TIMEOUT = 4,
	SBX_EXIT_UNKNOWN = 5,
};

#define SBX_CLI_TIMEOUT_MS_DEFAULT 5000
#define SBX_CLI_TIMEOUT_MS_MAX 600000
#define SBX_CLI_MAX_OPTS 32

/* The global options, resolved.  Strings point into argv or the
 * environment. */
struct sbx_cli {
	const char *prog;       /* "sbx-request" or "sbxctl": prefixes every error */
	const char *socket;     /* --socket, else $SBX_SOCKET, else SBX_DEFAULT_SOCKET */
	const char *as_user;    /* --as USER, or NULL */
	bool json;              /* --json */
	int timeout_ms;         /* --timeout-ms, for each call to the broker */
};

/* One tool-specific option.  Its index in the tool's table is its bit in
 * sbx_cli_cmd.opts and its slot in sbx_cli_args.val. */
struct sbx_cli_opt {
	const char *name;       /* long name without "--" */
	bool has_arg;
	char short_name;        /* also -X (0: none; never 'h') */
};

/* What the parser hands a command. */
struct sbx_cli_args {
	const char *val[SBX_CLI_MAX_OPTS]; /* option values; "" for a flag; NULL = not given */
	uint32_t seen;                     /* bit i: option i was given */
	char **pos;                        /* the command's positional arguments */
	int npos;
	/* Every value given to a tool option, in order (for an option that
	 * may be repeated; val[] keeps the last): occ[k] for option occ_opt[k]. */
	const char **occ;
	int *occ_opt;
	int nocc;
};

struct sbx_cli_cmd {
	const char *name;       /* "approve", or two words: "policy check" */
	const char *synopsis;   /* after the program name: "approve ID [--comment TEXT] [--for DUR]" */
	const char *summary;    /* one line for the command list */
	const char *help;       /* the command's manual: description, options, examples */
	int min_args;           /* positional arguments after the name */
	int max_args;           /* -1: no limit */
	uint32_t opts;          /* tool options this command accepts (bits) */
	int (*run)(const struct sbx_cli *c, const struct sbx_cli_args *a);
};

struct sbx_cli_tool {
	const char *prog;
	const char *purpose;    /* one paragraph under the synopsis */
	const struct sbx_cli_opt *opts;
	size_t n_opts;
	const struct sbx_cli_cmd *cmds;
	size_t n_cmds;
	/* Run when the first word is not a command (sbx-request ROLE): its
	 * first positional argument is that word.  NULL: unknown command. */
	const struct sbx_cli_cmd *fallback;
	const char *extra_help; /* printed after the command list (durations, --json, ...) */
	const char *examples;
};

#define SBX_CLI_OPT_BIT(i) (UINT32_C(1) << (i))

/* Parse argv, print help or version when asked, run the command and
 * return the exit code.  Global options may come before or after the
 * command; "--" ends options. */
int sbx_cli_main(const struct sbx_cli_tool *t, int argc, char **argv);

/* "PROG: message\n" on stderr.  The message is printed as given: callers
 * sanitize text that came from outside (the broker, a journal). */
void sbx_cli_error(const struct sbx_cli *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The same, followed by a hint to the command's help; returns SBX_EXIT_USAGE. */
int sbx_cli_usage(const struct sbx_cli *c, const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Argument checks.  Each prints "PROG: ..." and returns SBX_EXIT_USAGE on
 * a bad value, else 0.  what names the thing in the message
 * ("request id", "--for"). */
int sbx_cli_arg_id(const struct sbx_cli *c, const char *what, const char *s, uint32_t *id);
int sbx_cli_arg_duration(const struct sbx_cli *c, const char *what, const char *s, int64_t *secs);
int sbx_cli_arg_name(const struct sbx_cli *c, const char *what, const char *s);
int sbx_cli_arg_text(const struct sbx_cli *c, const char *what, const char *s);

/* Pure parsers behind the checks above (tested in tests/unit/test_cli.c). */
/* Decimal 1..UINT32_MAX, digits only.  0 or -EINVAL / -ERANGE. */
int sbx_cli_parse_id(const char *s, uint32_t *id);
/* Decimal lo..hi, digits only.  0 or -EINVAL / -ERANGE. */
int sbx_cli_parse_long(const char *s, long lo, long hi, long *out);
/* A point in time for audit queries: RFC 3339 ("2026-11-28T09:00:00Z"), a
 * date ("2026-11-28", midnight UTC) or a duration meaning that long before
 * now_us ("2h", "1d12h").  0 or -EINVAL. */
int sbx_cli_parse_when(const char *s, int64_t now_us, int64_t *us);

/* A reply from the broker.  frame is owned (free with sbx_cli_reply_free). */
struct sbx_cli_reply {
	uint8_t *frame;
	size_t len;
	uint32_t status;
	char message[SBX_STR_MAX + 1]; /* raw, not sanitized */
};

void sbx_cli_reply_free(struct sbx_cli_reply *r);

/* Start a request frame for op, with AS_USER when --as was given.  A frame
 * that cannot be built (out of memory) fails when it is sent: errors are
 * sticky in m and sbx_cli_call reports them. */
void sbx_cli_msg_init(const struct sbx_cli *c, sbx_msg *m, uint16_t op);

/* One round trip.  Returns SBX_EXIT_OK when the broker answered with
 * SBX_ST_OK; otherwise the exit code, with the reason (without the program
 * prefix, sanitized) in err.  rep is filled whenever a reply arrived, even
 * a refusal; the caller frees it in every case.  A change (REQUEST,
 * CANCEL, DROP, APPROVE, DENY, REVOKE) sent whole and never answered is
 * SBX_EXIT_UNKNOWN: the broker may have recorded it. */
int sbx_cli_call_quiet(const struct sbx_cli *c, sbx_msg *req, struct sbx_cli_reply *rep,
		       char *err, size_t errlen);
/* The same, printing the reason as "PROG: ..." on failure. */
int sbx_cli_call(const struct sbx_cli *c, sbx_msg *req, struct sbx_cli_reply *rep);

/* Call and decode the answer (printing any failure):
 *   tag == 0:  the reply's own fields, as kind;
 *   many:      every REC with tag, as an array (maybe empty);
 *   otherwise: the first REC with tag (its absence is an error).
 * Returns the exit code; *out is set only on SBX_EXIT_OK. */
int sbx_cli_call_json(const struct sbx_cli *c, sbx_msg *req, uint16_t tag, bool many,
		      enum sbx_out_kind kind, json_t **out);

/* A list op in pages (LIST, PENDING, GRANTS; sbx_proto.h): ask for
 * page after page, sending each reply's NEXT_CURSOR back as CURSOR, and
 * collect every REQUEST of them, in the list's order, as an array.  user
 * (may be NULL) and flags (0: none) go with every page.  Returns the exit
 * code (printing any failure); *out is set only on SBX_EXIT_OK. */
int sbx_cli_call_pages(const struct sbx_cli *c, uint16_t op, uint32_t flags, const char *user,
		       json_t **out);

/* Call an op answered with one REQUEST record (REQUEST) and decode it
 * (printing any failure); *flags gets the reply's FLAGS (0 when there are
 * none), e.g. SBX_REQUEST_EXISTED.  Returns the exit code; *out and
 * *flags are set only on SBX_EXIT_OK. */
int sbx_cli_call_request(const struct sbx_cli *c, sbx_msg *req, json_t **out, uint32_t *flags);

/* An op about one request (STATUS, CANCEL, DROP, APPROVE, DENY, REVOKE):
 * its ID and the optional fields the command gives (NULL / 0 when not). */
struct sbx_cli_about {
	uint32_t id;
	const char *reason;
	const char *comment;
	int64_t duration;
};

/* Check and collect the request ID (the first positional argument) and
 * the options at these indices of the tool's option table (-1: the
 * command has none).  0, or SBX_EXIT_USAGE after saying why. */
int sbx_cli_parse_about(const struct sbx_cli *c, const struct sbx_cli_args *a, int o_reason,
			int o_comment, int o_for, struct sbx_cli_about *q);

/* Send op about one request and decode the request it answers with
 * (printing any failure).  Returns the exit code; *req is set only on
 * SBX_EXIT_OK. */
int sbx_cli_call_about(const struct sbx_cli *c, uint16_t op, const struct sbx_cli_about *q,
		       json_t **req);

/* --json: the object; else nothing.  Returns the exit code. */
int sbx_cli_print_json(const struct sbx_cli *c, const json_t *j);

/* The exit code for a reply STATUS (SBX_ST_*). */
int sbx_cli_exit_for_status(uint32_t status);
/* The exit code for a negative errno from sbx_call(). */
int sbx_cli_exit_for_errno(int err);

#endif
