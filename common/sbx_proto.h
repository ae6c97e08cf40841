/*
 * sbx wire protocol, version 1.  This header is the specification;
 * docs/protocol.md explains it in prose and must agree with it.
 *
 * Transport
 *   AF_UNIX SOCK_STREAM socket (broker.socket, default /run/sbx/broker.sock).
 *   The broker identifies the caller by SO_PEERCRED, never by anything the
 *   caller says.  A client sends one request frame and reads one reply
 *   frame; it may send further requests on the same connection.
 *
 * Frame (all integers in network byte order)
 *   u32 length    whole frame in bytes, header included:
 *                 SBX_HDR_LEN <= length <= SBX_FRAME_MAX
 *   u16 version   SBX_PROTO_VERSION
 *   u16 op        an SBX_OP_* code; a reply carries (op | SBX_OP_REPLY)
 *   field...      until length is used up
 *
 * Field
 *   u16 tag       an SBX_F_* code; the tag fixes the value's type
 *   u16 len       value length in bytes
 *   u8  value[len]
 *
 * Value types (see sbx_field_type())
 *   STR  UTF-8 text without NUL bytes, len <= SBX_STR_MAX
 *   U32  len == 4
 *   I64  len == 8, two's complement; times are Unix seconds (UTC)
 *   REC  a nested sequence of fields (a request, a role, ...), at most
 *        SBX_REC_DEPTH levels deep
 *
 * Rules
 *   - A frame that is short, too long, of another version, with an unknown
 *     op or tag, a value of the wrong size, a NUL inside a STR or a field
 *     running past its parent is malformed.  The broker answers it with a
 *     reply of op SBX_OP_ERROR carrying STATUS = SBX_ST_PROTO and a MESSAGE,
 *     then closes the connection.
 *   - Every reply starts with STATUS (U32, SBX_ST_*) followed by MESSAGE
 *     (STR, may be empty), then the op's own fields.
 *   - Tags may repeat where the op's description says "repeated".
 *   - A client checks that the reply's op is its own op | SBX_OP_REPLY (or
 *     SBX_OP_ERROR).
 *   - AS_USER (optional in every request) asks to act for another user;
 *     only root and members of broker.admin_group may use it.
 */
#ifndef SBX_PROTO_H
#define SBX_PROTO_H

#include <stdint.h>

#define SBX_PROTO_VERSION 1u
#define SBX_HDR_LEN 8u
#define SBX_FIELD_HDR_LEN 4u
#define SBX_FRAME_MAX 65536u
#define SBX_STR_MAX 4096u
#define SBX_REC_DEPTH 3

/* User and role names: what the broker accepts as a name. */
#define SBX_NAME_MAX 64u
/* Free text (reasons, comments). */
#define SBX_TEXT_MAX 1024u

enum sbx_op {
	/* decisions */
	SBX_OP_CHECK = 0x0001,    /* USER [SERVICE RHOST TTY] [FLAGS: SBX_CHECK_RECORD]
	                           * -> ALLOWED, MESSAGE says why, [ROLE] [ID] [VIA] */
	SBX_OP_EXPLAIN = 0x0002,  /* USER -> ALLOWED, MESSAGE, MEMBERSHIP... (repeated) */
	SBX_OP_PING = 0x0003,     /* -> VERSION, HOST, POLICY_SHA, SEQ, [DEGRADED] */

	/* a user's own requests */
	SBX_OP_REQUEST = 0x0010,  /* ROLE [DURATION] [REASON] [TICKET] [EXTENDS] -> REQUEST
	                           * [FLAGS: SBX_REQUEST_EXISTED] */
	SBX_OP_LIST = 0x0011,     /* [FLAGS: SBX_LIST_ALL] [CURSOR LIMIT] -> REQUEST...
	                           * (repeated, newest first) [NEXT_CURSOR] */
	SBX_OP_STATUS = 0x0012,   /* ID -> REQUEST (with COMMANDINFO... for a grant) */
	SBX_OP_CANCEL = 0x0013,   /* ID [REASON] -> REQUEST (pending -> cancelled) */
	SBX_OP_DROP = 0x0014,     /* ID [REASON] -> REQUEST (active -> revoked by holder) */
	SBX_OP_ROLES = 0x0015,    /* -> ROLEINFO... (repeated): what the caller may ask for */

	/* approvers and admins */
	SBX_OP_PENDING = 0x0020,  /* [CURSOR LIMIT] -> REQUEST... requests the caller may
	                           * decide (oldest first) [NEXT_CURSOR] */
	SBX_OP_APPROVE = 0x0021,  /* ID [COMMENT] [DURATION] -> REQUEST */
	SBX_OP_DENY = 0x0022,     /* ID [REASON] -> REQUEST */
	SBX_OP_REVOKE = 0x0023,   /* ID [REASON] -> REQUEST */
	SBX_OP_GRANTS = 0x0024,   /* [USER] [FLAGS: SBX_LIST_ALL] [CURSOR LIMIT] -> REQUEST...
	                           * active grants (newest first) [NEXT_CURSOR] */

	/* personal API tokens (docs/api.md) */
	SBX_OP_TOKEN_CREATE = 0x0030, /* TOKEN_NAME DURATION [SCOPES] -> TOKEN (the secret, shown
	                               * this once), TOKENINFO */
	SBX_OP_TOKEN_LIST = 0x0031,   /* [FLAGS: SBX_LIST_ALL: everyone's, admins only]
	                               * -> TOKENINFO... (repeated), live tokens */
	SBX_OP_TOKEN_REVOKE = 0x0032, /* TOKEN_NAME | TOKEN_ID [USER: whose, admins] -> TOKENINFO */

	/* sessions (pam_sbx): ops 0x0050-0x005f */
	SBX_OP_SESSION_OPEN = 0x0050,  /* root only: USER [SERVICE RHOST TTY] [ID: grant the
	                                * account check rested on] [PID: leader, default the
	                                * caller's SO_PEERCRED pid]
	                                * -> SESSION, [ID grant it rests on], [ROLE] [VIA];
	                                * STATUS REFUSED when the user may not log in now */
	SBX_OP_SESSION_CLOSE = 0x0051, /* root only: SESSION | USER [PID] [TTY]
	                                * -> SESSION (the one closed); NOTFOUND if none */
	SBX_OP_SESSIONS = 0x0052,      /* admins: [USER] -> SESSIONINFO... (repeated) */

	/* unix groups (libnss_sbx): ops 0x0060-0x006f */
	/* libnss_sbx's fallback when the grant table (docs/nss.md) is missing or
	 * malformed.  Anyone may ask (group membership is public, as in
	 * /etc/group).  Members are those live at the broker's clock.  A group
	 * that does not fit one frame gets STATUS INTERNAL (read the table). */
	SBX_OP_GROUP_BYNAME = 0x0060,  /* UNIX_GROUP -> GROUP; STATUS NOTFOUND if not ours */
	SBX_OP_GROUP_BYGID = 0x0061,   /* GID -> GROUP; STATUS NOTFOUND if not ours */
	SBX_OP_GROUP_LIST = 0x0062,    /* [ID: first group, default 0] -> GROUP... (repeated,
	                                * as many whole groups as fit), [ID: the next one to
	                                * ask for, only when there are more] */
	SBX_OP_GROUP_MEMBERSHIPS = 0x0063, /* USER -> GID... (repeated): the groups USER is a
	                                * live member of (initgroups); none is STATUS OK */

	/* permission drift (broker/drift.h): ops 0x0070-0x007f */
	SBX_OP_DRIFT = 0x0070,         /* admins: -> SCANS, [SCANNED_AT], [SCANNING],
	                                * DRIFT... (repeated): the open findings */
	SBX_OP_DRIFT_SCAN = 0x0071,    /* admins: -> SCANS (so far): a scan starts now, or
	                                * right after the one under way */
	/* access reviews (docs/review.md): ops 0x0080-0x008f */
	SBX_OP_REVIEW_CERTIFY = 0x0080, /* USER ROLE COMMENT -> MESSAGE (the role's approvers
	                                 * and admins, never USER) */
	SBX_OP_REVIEW_REVOKE = 0x0081,  /* USER ROLE COMMENT -> MESSAGE; ends USER's grants of
	                                 * ROLE and their eligibility until the policy changes */
	SBX_OP_REVIEW_STATUS = 0x0082,  /* -> REVIEWINFO... (repeated): each role's review */
	/* audit: ops 0x0090-0x009f (docs/protocol.md, "Audit: the live record stream") */
	SBX_OP_TAIL = 0x0090,     /* [FLAGS: SBX_TAIL_FOLLOW] [COUNT] filters: [USER] [ACTOR]
	                           * [ROLE] [ID] [EVENT] [HOST] [OUTCOME]
	                           * -> SEQ (the last durable record), RECORD... (the last COUNT
	                           * the caller may see, oldest first).  With FOLLOW the
	                           * connection then carries only TAIL replies, pushed: STATUS OK
	                           * RECORD... per batch of durable records; a last one with
	                           * STATUS REFUSED and SEQ (the next record not sent) when the
	                           * reader is dropped.  Root and admins see every record, others
	                           * those whose user or actor they are. */
	/* sudo commands (sbx_sudo.so, docs/sudo.md): ops 0x00a0-0x00af.  Root
	 * only (sudo's front end runs as root); the person is the real uid of
	 * the SO_PEERCRED pid, and the groups its credentials hold are read
	 * from the same process, never from the request. */
	SBX_OP_SUDO_CHECK = 0x00a0,    /* RUNAS COMMAND [CWD TTY] -> ALLOWED, MESSAGE, [ID ROLE]
	                                * VIA, [SEQ: the command.run record]; records
	                                * command.run or command.refused */
	SBX_OP_SUDO_RUN = 0x00a1,      /* RUNAS COMMAND [CWD TTY PLUGIN] -> [ID ROLE] VIA SEQ:
	                                * records command.run (no decision: the audit
	                                * plugin alone, without the approval plugin) */
	SBX_OP_SUDO_REFUSED = 0x00a2,  /* [RUNAS] COMMAND [CWD TTY] PLUGIN VERDICT [REASON]
	                                * -> records command.refused */
	SBX_OP_SUDO_EXITED = 0x00a3,   /* SEQ [EXIT_STATUS | SIGNAL] ELAPSED_MS
	                                * -> records command.exited */
	SBX_OP_SUDO_SPOOLED = 0x00a4,  /* STATE (run|refused|exited) UID CREATED_AT COMMAND
	                                * [RUNAS CWD TTY VERDICT PLUGIN REASON EXIT_STATUS
	                                * SIGNAL ELAPSED_MS]: a record written down by
	                                * failmode=open while the broker was away
	                                * -> records command.<STATE> with spooled */

	SBX_OP_ERROR = 0x7fff,    /* reply only: the request could not be parsed */
	SBX_OP_REPLY = 0x8000,
};

/* Reply STATUS codes.  The CLIs map them to exit codes (see cli/). */
enum sbx_status {
	SBX_ST_OK = 0,
	SBX_ST_REFUSED = 1,     /* policy or permission says no */
	SBX_ST_BADINPUT = 2,    /* the request is well-formed but its content is wrong */
	SBX_ST_NOTFOUND = 3,    /* no such request / user / role */
	SBX_ST_UNAVAILABLE = 4, /* the broker cannot record changes (journal failed) */
	SBX_ST_PROTO = 5,       /* malformed frame */
	SBX_ST_INTERNAL = 6,
};

enum sbx_type {
	SBX_T_UNKNOWN = 0,
	SBX_T_STR,
	SBX_T_U32,
	SBX_T_I64,
	SBX_T_REC,
};

/* Field tags.  The high byte groups them; the type is in sbx_field_type(). */
enum sbx_tag {
	/* envelope */
	SBX_F_STATUS = 0x0001,      /* U32 */
	SBX_F_MESSAGE = 0x0002,     /* STR */
	SBX_F_AS_USER = 0x0003,     /* STR */
	SBX_F_FLAGS = 0x0004,       /* U32 */

	/* check */
	SBX_F_USER = 0x0101,        /* STR */
	SBX_F_SERVICE = 0x0102,     /* STR */
	SBX_F_RHOST = 0x0103,       /* STR */
	SBX_F_TTY = 0x0104,         /* STR */
	SBX_F_ALLOWED = 0x0105,     /* U32 0|1 */
	SBX_F_VIA = 0x0106,         /* STR: what an answer rests on ("standing", "grant", "group developers") */
	SBX_F_HOST = 0x0107,        /* STR */

	/* requests and grants */
	SBX_F_ID = 0x0201,          /* U32 */
	SBX_F_ROLE = 0x0202,        /* STR */
	SBX_F_DURATION = 0x0203,    /* I64 seconds */
	SBX_F_REASON = 0x0204,      /* STR */
	SBX_F_TICKET = 0x0205,      /* STR */
	SBX_F_COMMENT = 0x0206,     /* STR */
	SBX_F_EXTENDS = 0x0207,     /* U32: the grant this request extends */
	SBX_F_REQUEST = 0x0208,     /* REC: one request/grant, fields below */
	SBX_F_STATE = 0x0209,       /* STR: pending|active|expired|revoked|denied|cancelled|lapsed */
	SBX_F_CREATED_AT = 0x020a,  /* I64 */
	SBX_F_ACTIVATED_AT = 0x020b,/* I64 */
	SBX_F_EXPIRES_AT = 0x020c,  /* I64: for pending, when it lapses; else when the grant ends */
	SBX_F_ENDED_AT = 0x020d,    /* I64 */
	SBX_F_APPROVALS_NEEDED = 0x020e, /* U32 */
	SBX_F_APPROVED_BY = 0x020f, /* STR, repeated */
	SBX_F_UNIX_GROUP = 0x0210,  /* STR */
	SBX_F_GID = 0x0211,         /* U32 */
	SBX_F_ACTOR = 0x0212,       /* STR: who acted (the person) */
	SBX_F_THROUGH = 0x0213,     /* STR: the unix account that acted for them, if another */
	SBX_F_END_REASON = 0x0214,  /* STR */
	SBX_F_ENDED_BY = 0x0215,    /* STR */
	SBX_F_APPROVERS = 0x0216,   /* STR: who can approve, in words */
	SBX_F_NOTE = 0x0217,        /* STR: what else the person must know, e.g. that a
	                             * revocation holds on this host only for now */

	/* roles */
	SBX_F_ROLEINFO = 0x0301,    /* REC */
	SBX_F_DESCRIPTION = 0x0302, /* STR */
	SBX_F_HOSTS = 0x0303,       /* STR, repeated: host globs */
	SBX_F_MAX_DURATION = 0x0304,/* I64 */
	SBX_F_DEFAULT_DURATION = 0x0305, /* I64 */
	SBX_F_AUTO_APPROVE = 0x0306,/* U32 0|1 */
	SBX_F_REQUIRE_REASON = 0x0307, /* U32 0|1 */
	SBX_F_REQUIRE_TICKET = 0x0308, /* STR regex */
	SBX_F_REASON_MIN = 0x0309,  /* U32 */
	SBX_F_MEMBERSHIP = 0x030a,  /* REC: ROLE HOW VIA LOGIN */
	SBX_F_HOW = 0x030b,         /* STR: standing|eligible|grant */
	SBX_F_LOGIN = 0x030c,       /* U32 0|1: this role lets the user log in on this host */
	SBX_F_HOST_MATCH = 0x030d,  /* U32 0|1: the role's hosts match this host */

	/* broker status */
	SBX_F_VERSION = 0x0401,     /* STR */
	SBX_F_POLICY_SHA = 0x0402,  /* STR hex sha256 of the policy file */
	SBX_F_SEQ = 0x0403,         /* I64 last journal seq */
	SBX_F_DEGRADED = 0x0404,    /* STR: why the broker refuses changes */
	SBX_F_FLEET = 0x0405,       /* STR: the fleet's state in words (in a fleet only) */
	SBX_F_FLEET_SEQ = 0x0406,   /* I64: the fleet seq this host's state is at */
	SBX_F_STALE = 0x0407,       /* U32 0|1: the copy of the fleet's log is older than max_stale */
	SBX_F_WRITABLE = 0x0408,    /* U32 0|1: changes can be recorded (in a fleet: its log can be
	                             * written) */

	/* sessions: tags 0x0500-0x05ff */
	SBX_F_SESSION = 0x0501,     /* U32: session id (from 1) */
	SBX_F_PID = 0x0502,         /* U32: the session leader's pid */
	SBX_F_SESSIONINFO = 0x0503, /* REC: SESSION USER PID [SERVICE TTY RHOST] [ID ROLE]
	                             * VIA OPENED_AT STATE */
	SBX_F_OPENED_AT = 0x0504,   /* I64 */

	/* unix groups: tags 0x0600-0x06ff */
	SBX_F_GROUP = 0x0601,       /* REC: UNIX_GROUP GID MEMBER... */
	SBX_F_MEMBER = 0x0602,      /* STR, repeated: a user name */

	/* permission drift: tags 0x0700-0x07ff */
	SBX_F_DRIFT = 0x0701,       /* REC: FINDING KIND SUBJECT [FILE LINE] FOUND POLICY_SAYS
	                             * DETECTED_AT */
	SBX_F_FINDING = 0x0702,     /* STR: a finding's id (16 hex digits) */
	SBX_F_KIND = 0x0703,        /* STR: group|sudoers|authorized_keys|session|grant|file */
	SBX_F_SUBJECT = 0x0704,     /* STR: a user, "%group", or a file */
	SBX_F_FILE = 0x0705,        /* STR: where */
	SBX_F_LINE = 0x0706,        /* U32: line in FILE (0: the whole file) */
	SBX_F_FOUND = 0x0707,       /* STR: what is there */
	SBX_F_POLICY_SAYS = 0x0708, /* STR: what the policy says */
	SBX_F_DETECTED_AT = 0x0709, /* I64 */
	SBX_F_SCANS = 0x070a,       /* U32: scans finished since the broker started */
	SBX_F_SCANNED_AT = 0x070b,  /* I64: when the last one finished */
	SBX_F_SCANNING = 0x070c,    /* U32 0|1: a scan is under way */
	/* access reviews: tags 0x0800-0x08ff */
	SBX_F_REVIEWINFO = 0x0801,  /* REC: ROLE STATE [LAST_REVIEW] [NEXT_DUE] [DURATION:
	                             * review_every] [ON_MISSED] [NOTE] */
	SBX_F_LAST_REVIEW = 0x0802, /* I64 */
	SBX_F_NEXT_DUE = 0x0803,    /* I64 */
	SBX_F_ON_MISSED = 0x0804,   /* STR: notify|suspend */
	/* audit: tags 0x0900-0x09ff */
	SBX_F_RECORD = 0x0901,      /* STR, repeated: one journal record as compact JSON; one
	                             * longer than SBX_STR_MAX comes as {seq,time,event,actor,
	                             * "omitted":"..."} */
	SBX_F_EVENT = 0x0902,       /* STR: an event, or a prefix ending in '.' or ".*" */
	SBX_F_OUTCOME = 0x0903,     /* STR: allowed, refused, requested, ... (docs/audit.md) */
	SBX_F_COUNT = 0x0904,       /* U32 */
	/* API tokens: tags 0x0a00-0x0aff */
	SBX_F_TOKEN = 0x0a01,       /* STR: a token's text, only in TOKEN_CREATE's reply */
	SBX_F_TOKEN_NAME = 0x0a02,  /* STR */
	SBX_F_TOKEN_ID = 0x0a03,    /* STR: 16 hex digits, public */
	SBX_F_SCOPES = 0x0a04,      /* STR: "read,request,approve,audit" (a subset) */
	SBX_F_TOKENINFO = 0x0a05,   /* REC: TOKEN_ID TOKEN_NAME USER SCOPES CREATED_AT EXPIRES_AT
	                             * STATE (live|ended) */
	/* sudo commands: tags 0x0b00-0x0bff */
	SBX_F_COMMAND = 0x0b01,     /* STR: the argv, escaped (docs/sudo.md), at most
	                             * SBX_COMMAND_MAX bytes */
	SBX_F_CWD = 0x0b02,         /* STR */
	SBX_F_RUNAS = 0x0b03,       /* STR: the user the command runs as */
	SBX_F_PLUGIN = 0x0b04,      /* STR: the sudo plugin that decided */
	SBX_F_VERDICT = 0x0b05,     /* STR: rejected|error */
	SBX_F_EXIT_STATUS = 0x0b06, /* U32 */
	SBX_F_SIGNAL = 0x0b07,      /* U32 */
	SBX_F_ELAPSED_MS = 0x0b08,  /* I64 */
	SBX_F_COMMANDINFO = 0x0b09, /* REC, repeated, in STATUS's REQUEST: a command run
	                             * under the grant: COMMAND [RUNAS] CREATED_AT
	                             * [EXIT_STATUS | SIGNAL] [VERDICT] */
	SBX_F_UID = 0x0b0a,         /* U32 */
	/* lists in pages (LIST, PENDING, GRANTS): tags 0x0c00-0x0cff.  A reply
	 * holds at most LIMIT records (absent: as many as fit one frame); when
	 * more follow it ends with NEXT_CURSOR, which the next request sends
	 * as CURSOR to go on after the last record it got. */
	SBX_F_CURSOR = 0x0c01,      /* U32: go on after this request id, in the list's order */
	SBX_F_LIMIT = 0x0c02,       /* U32: at most this many records (from 1) */
	SBX_F_NEXT_CURSOR = 0x0c03, /* U32: in a reply, only when more follow */
};

/* A command line as sbx_sudo sends it: escaped, cut with a marker. */
#define SBX_COMMAND_MAX 2048u

/* FLAGS bits */
#define SBX_CHECK_RECORD 0x1u /* record the decision as access.checked (PAM) */
#define SBX_LIST_ALL 0x1u     /* include ended requests / everybody's */
#define SBX_REQUEST_EXISTED 0x1u /* in a REQUEST reply: the request was already open
                                 * (a retry); nothing was recorded */
#define SBX_TAIL_FOLLOW 0x1u     /* TAIL: keep the connection and push new records */
#define SBX_SUDO_RUNAS_ROOT 0x1u /* SUDO_CHECK: the command runs as uid 0 */

static inline enum sbx_type sbx_field_type(uint16_t tag)
{
	switch (tag) {
	case SBX_F_STATUS: case SBX_F_FLAGS: case SBX_F_ALLOWED: case SBX_F_ID:
	case SBX_F_EXTENDS: case SBX_F_APPROVALS_NEEDED: case SBX_F_GID:
	case SBX_F_AUTO_APPROVE: case SBX_F_REQUIRE_REASON: case SBX_F_REASON_MIN:
	case SBX_F_LOGIN: case SBX_F_HOST_MATCH: case SBX_F_SESSION: case SBX_F_PID:
	case SBX_F_STALE: case SBX_F_WRITABLE: case SBX_F_LINE: case SBX_F_SCANS:
	case SBX_F_SCANNING: case SBX_F_COUNT: case SBX_F_EXIT_STATUS: case SBX_F_SIGNAL:
	case SBX_F_UID: case SBX_F_CURSOR: case SBX_F_LIMIT: case SBX_F_NEXT_CURSOR:
		return SBX_T_U32;
	case SBX_F_DURATION: case SBX_F_CREATED_AT: case SBX_F_ACTIVATED_AT:
	case SBX_F_EXPIRES_AT: case SBX_F_ENDED_AT: case SBX_F_MAX_DURATION:
	case SBX_F_DEFAULT_DURATION: case SBX_F_SEQ: case SBX_F_OPENED_AT:
	case SBX_F_FLEET_SEQ: case SBX_F_DETECTED_AT: case SBX_F_SCANNED_AT:
	case SBX_F_LAST_REVIEW: case SBX_F_NEXT_DUE: case SBX_F_ELAPSED_MS:
		return SBX_T_I64;
	case SBX_F_REQUEST: case SBX_F_ROLEINFO: case SBX_F_MEMBERSHIP:
	case SBX_F_SESSIONINFO: case SBX_F_GROUP: case SBX_F_DRIFT: case SBX_F_REVIEWINFO:
	case SBX_F_TOKENINFO: case SBX_F_COMMANDINFO:
		return SBX_T_REC;
	case SBX_F_MESSAGE: case SBX_F_AS_USER: case SBX_F_USER: case SBX_F_SERVICE:
	case SBX_F_RHOST: case SBX_F_TTY: case SBX_F_VIA: case SBX_F_HOST:
	case SBX_F_ROLE: case SBX_F_REASON: case SBX_F_TICKET: case SBX_F_COMMENT:
	case SBX_F_STATE: case SBX_F_APPROVED_BY: case SBX_F_UNIX_GROUP:
	case SBX_F_ACTOR: case SBX_F_THROUGH: case SBX_F_END_REASON:
	case SBX_F_ENDED_BY: case SBX_F_APPROVERS: case SBX_F_DESCRIPTION:
	case SBX_F_HOSTS: case SBX_F_REQUIRE_TICKET: case SBX_F_HOW:
	case SBX_F_VERSION: case SBX_F_POLICY_SHA: case SBX_F_DEGRADED:
	case SBX_F_MEMBER: case SBX_F_FLEET: case SBX_F_NOTE:
	case SBX_F_FINDING: case SBX_F_KIND: case SBX_F_SUBJECT: case SBX_F_FILE:
	case SBX_F_FOUND: case SBX_F_POLICY_SAYS: case SBX_F_ON_MISSED:
	case SBX_F_RECORD: case SBX_F_EVENT: case SBX_F_OUTCOME:
	case SBX_F_TOKEN: case SBX_F_TOKEN_NAME: case SBX_F_TOKEN_ID: case SBX_F_SCOPES:
	case SBX_F_COMMAND: case SBX_F_CWD: case SBX_F_RUNAS: case SBX_F_PLUGIN:
	case SBX_F_VERDICT:
		return SBX_T_STR;
	}
	return SBX_T_UNKNOWN;
}

static inline int sbx_op_known(uint16_t op)
{
	switch (op) {
	case SBX_OP_CHECK: case SBX_OP_EXPLAIN: case SBX_OP_PING:
	case SBX_OP_REQUEST: case SBX_OP_LIST: case SBX_OP_STATUS:
	case SBX_OP_CANCEL: case SBX_OP_DROP: case SBX_OP_ROLES:
	case SBX_OP_PENDING: case SBX_OP_APPROVE: case SBX_OP_DENY:
	case SBX_OP_REVOKE: case SBX_OP_GRANTS:
	case SBX_OP_TOKEN_CREATE: case SBX_OP_TOKEN_LIST: case SBX_OP_TOKEN_REVOKE:
	case SBX_OP_SESSION_OPEN: case SBX_OP_SESSION_CLOSE: case SBX_OP_SESSIONS:
	case SBX_OP_GROUP_BYNAME: case SBX_OP_GROUP_BYGID: case SBX_OP_GROUP_LIST:
	case SBX_OP_GROUP_MEMBERSHIPS:
	case SBX_OP_DRIFT: case SBX_OP_DRIFT_SCAN:
	case SBX_OP_REVIEW_CERTIFY: case SBX_OP_REVIEW_REVOKE: case SBX_OP_REVIEW_STATUS:
	case SBX_OP_TAIL:
	case SBX_OP_SUDO_CHECK: case SBX_OP_SUDO_RUN: case SBX_OP_SUDO_REFUSED:
	case SBX_OP_SUDO_EXITED: case SBX_OP_SUDO_SPOOLED:
		return 1;
	}
	return 0;
}

#endif
