/*
 * The drift scan's pure part (broker/drift_scan.c) and the policy's
 * drift: section (policy/policy_drift.c): the sudoers parser (includes,
 * aliases, negation, lines it cannot parse), the commands check, group
 * and gshadow members, authorized_keys, and files the scan must not
 * trust.  Real files in a temp dir; no broker.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "drift_scan.h"
#include "policy.h"

static char dir[64];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/sbxdrift.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

/* dir/name with text, mode; returns the path (static buffer rotation). */
static const char *put(const char *name, mode_t mode, const char *fmt, ...)
{
	static char paths[8][512];
	static int k;
	char *p = paths[k++ % 8];
	va_list ap;
	FILE *f;

	snprintf(p, 512, "%s/%s", dir, name);
	f = fopen(p, "w");
	cr_assert_not_null(f, "%s: %s", p, strerror(errno));
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
	cr_assert_eq(chmod(p, mode), 0);
	return p;
}

static void sub(const char *name)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	cr_assert_eq(mkdir(p, 0755), 0);
}

static const struct sbx_sudoers_rule *rule_at(const struct sbx_sudoers *s, unsigned line,
					   const char *file_end)
{
	for (size_t i = 0; i < s->n_rules; i++) {
		size_t n = strlen(s->rules[i].file), m = strlen(file_end);

		if (s->rules[i].line == line && n >= m && strcmp(s->rules[i].file + n - m, file_end) == 0)
			return &s->rules[i];
	}
	return NULL;
}

static bool has_user(const struct sbx_sudoers_rule *r, enum sbx_sudo_who who, const char *name,
		     bool negated)
{
	for (size_t i = 0; i < r->n_users; i++)
		if (r->users[i].who == who && strcmp(r->users[i].name, name) == 0 &&
		    r->users[i].negated == negated)
			return true;
	return false;
}

static bool has_cmd(const struct sbx_sudoers_rule *r, const char *cmd)
{
	for (size_t i = 0; i < r->n_cmds; i++)
		if (strcmp(r->cmds[i], cmd) == 0)
			return true;
	return false;
}

TestSuite(sudoers, .init = setup, .fini = teardown);

Test(sudoers, users_groups_tags_runas_and_digests)
{
	struct sbx_sudoers s = { 0 };
	const char *p = put("sudoers", 0440,
			    "# a comment\n"
			    "Defaults env_reset\n"
			    "Defaults:alice !requiretty\n"
			    "root ALL=(ALL:ALL) ALL\n"
			    "%%wheel, bob ALL = (root) NOPASSWD: SETENV: /usr/bin/apt update, /bin/ls\n"
			    "#1000 host1 = CWD=/tmp sha256:abcdef /usr/bin/id\n"
			    "%%#60001 ALL=ALL : web1 = (www) /usr/sbin/apachectl graceful\n"
			    "+ops, %%:ad-admins ALL = ALL   # trailing comment\n");
	const struct sbx_sudoers_rule *r;

	sbx_sudoers_read(&s, p, "sbx-01", (uid_t)-1);
	cr_assert_eq(s.n_problems, 0, "problem: %s", s.n_problems ? s.problems[0].why : "");
	cr_assert_eq(s.n_rules, 5);
	r = rule_at(&s, 5, "sudoers");
	cr_assert_not_null(r);
	cr_assert(has_user(r, SBX_SUDO_GROUP, "wheel", false));
	cr_assert(has_user(r, SBX_SUDO_USER, "bob", false));
	cr_assert(has_cmd(r, "/usr/bin/apt update"));
	cr_assert(has_cmd(r, "/bin/ls"));
	r = rule_at(&s, 6, "sudoers");
	cr_assert_not_null(r, "#1000 at the start of a line is a uid, not a comment");
	cr_assert(has_user(r, SBX_SUDO_UID, "1000", false));
	cr_assert(has_cmd(r, "/usr/bin/id"), "the option and the digest are not the command");
	r = rule_at(&s, 7, "sudoers");
	cr_assert(has_user(r, SBX_SUDO_GID, "60001", false));
	cr_assert(has_cmd(r, "ALL"));
	cr_assert(has_cmd(r, "/usr/sbin/apachectl graceful"), "the second Host_List's commands");
	r = rule_at(&s, 8, "sudoers");
	cr_assert(has_user(r, SBX_SUDO_NETGROUP, "ops", false));
	cr_assert(has_user(r, SBX_SUDO_NONUNIX, "ad-admins", false));
	cr_assert_eq(r->n_cmds, 1, "the comment is not a command");
	sbx_sudoers_free(&s);
}

Test(sudoers, aliases_and_negation)
{
	struct sbx_sudoers s = { 0 };
	const char *p = put("sudoers", 0440,
			    "User_Alias ADMINS = alice, %%ops, !carol : OTHERS = dave\n"
			    "User_Alias ALLOFTHEM = ADMINS, OTHERS\n"
			    "Cmnd_Alias SHELLS = /bin/sh, /bin/bash : RESTART = /usr/bin/systemctl restart *\n"
			    "Cmnd_Alias LOGS = /usr/bin/less /var/log/syslog\n"
			    "Host_Alias WEB = web1, web2\n"
			    "Runas_Alias OP = root, operator\n"
			    "ALLOFTHEM, !erin WEB = (OP) RESTART, !SHELLS, \\\n"
			    "    LOGS\n");
	const struct sbx_sudoers_rule *r;

	sbx_sudoers_read(&s, p, "sbx-01", (uid_t)-1);
	cr_assert_eq(s.n_problems, 0, "problem: %s", s.n_problems ? s.problems[0].why : "");
	cr_assert_eq(s.n_rules, 1);
	r = rule_at(&s, 7, "sudoers");
	cr_assert_not_null(r, "a continued line keeps its first line's number");
	cr_assert(has_user(r, SBX_SUDO_USER, "alice", false));
	cr_assert(has_user(r, SBX_SUDO_GROUP, "ops", false));
	cr_assert(has_user(r, SBX_SUDO_USER, "carol", true), "negation inside an alias");
	cr_assert(has_user(r, SBX_SUDO_USER, "dave", false), "an alias of aliases");
	cr_assert(has_user(r, SBX_SUDO_USER, "erin", true));
	cr_assert(has_cmd(r, "/usr/bin/systemctl restart *"));
	cr_assert(has_cmd(r, "/usr/bin/less /var/log/syslog"), "continued onto the next line");
	cr_assert(!has_cmd(r, "/bin/sh"), "negated commands never count as given");
	cr_assert_eq(r->n_cmds, 2);
	sbx_sudoers_free(&s);
}

Test(sudoers, includedir_include_and_loops)
{
	struct sbx_sudoers s = { 0 };
	const char *p;

	sub("d");
	sub("d2");
	sub("empty");
	put("d/10-ops", 0440, "ops ALL=ALL\n");
	put("d/20-with.dot", 0440, "dotted ALL=ALL\n");
	put("d/30-backup~", 0440, "tilde ALL=ALL\n");
	put("d/05-first", 0440, "first ALL=ALL\n");
	put("d2/more", 0440, "#include ../loop\nmore ALL=ALL\n");
	put("loop", 0440, "@include d2/more\nlooped ALL=ALL\n");
	p = put("sudoers", 0440,
		"@includedir %s/d\n"
		"@includedir %s/empty\n"
		"#includedir %s/d2\n"
		"@include loop\n"
		"@include \"%s/missing\"\n"
		"last ALL=ALL\n", dir, dir, dir, dir);
	sbx_sudoers_read(&s, p, "sbx-01", (uid_t)-1);
	cr_assert_eq(s.n_problems, 0, "problem: %s", s.n_problems ? s.problems[0].why : "");
	cr_assert_not_null(rule_at(&s, 1, "d/05-first"));
	cr_assert_not_null(rule_at(&s, 1, "d/10-ops"));
	cr_assert_null(rule_at(&s, 1, "d/20-with.dot"), "a name with a '.' is skipped");
	cr_assert_null(rule_at(&s, 1, "d/30-backup~"), "a name ending in '~' is skipped");
	cr_assert_not_null(rule_at(&s, 2, "d2/more"));
	cr_assert_not_null(rule_at(&s, 2, "/loop"), "a relative include is beside its file");
	cr_assert_not_null(rule_at(&s, 6, "/sudoers"));
	cr_assert_eq(s.n_rules, 5, "a file reached twice is read once (%zu rules)", s.n_rules);
	/* in order: 05-first before 10-ops */
	cr_assert(strstr(s.read[1], "05-first"), "files of a dir in lexical order: %s", s.read[1]);
	sbx_sudoers_free(&s);
}

Test(sudoers, bad_lines_are_problems_and_reading_goes_on)
{
	struct sbx_sudoers s = { 0 };
	const char *p = put("sudoers", 0440,
			    "alice ALL=ALL\n"
			    "this is not a rule\n"
			    "bob ALL = (root\n"
			    "User_Alias lower = x\n"
			    "carol ALL = rm -rf /\n"
			    "@frobnicate\n"
			    "\"unterminated ALL=ALL\n"
			    "dave ALL=ALL\n");

	sbx_sudoers_read(&s, p, "h", (uid_t)-1);
	cr_assert_eq(s.n_rules, 2, "the good lines are read (%zu)", s.n_rules);
	cr_assert_not_null(rule_at(&s, 1, "sudoers"));
	cr_assert_not_null(rule_at(&s, 8, "sudoers"));
	cr_assert_eq(s.n_problems, 6, "one problem per bad line (%zu)", s.n_problems);
	for (size_t i = 0; i < s.n_problems; i++)
		cr_assert(s.problems[i].line >= 2 && s.problems[i].line <= 7, "line %u: %s",
			  s.problems[i].line, s.problems[i].why);
	sbx_sudoers_free(&s);
}

Test(sudoers, untrusted_files_are_problems)
{
	struct sbx_sudoers s = { 0 };
	char link[600], big[600];
	const char *good = put("good", 0440, "x ALL=ALL\n");
	const char *p;
	int fd;

	put("writable", 0666, "w ALL=ALL\n");
	put("binary", 0440, "b ALL=ALL\n%c\n", 0);
	snprintf(link, sizeof(link), "%s/link", dir);
	cr_assert_eq(symlink(good, link), 0);
	snprintf(big, sizeof(big), "%s/big", dir);
	fd = open(big, O_WRONLY | O_CREAT, 0440);
	cr_assert(fd >= 0);
	cr_assert_eq(ftruncate(fd, SBX_DRIFT_SUDOERS_MAX + 1), 0);
	close(fd);
	p = put("sudoers", 0440, "@include writable\n@include binary\n@include link\n"
		"@include big\nok ALL=ALL\n");
	sbx_sudoers_read(&s, p, "h", (uid_t)-1);
	cr_assert_eq(s.n_rules, 1, "only the trusted file's rule (%zu)", s.n_rules);
	cr_assert_eq(s.n_problems, 4);
	cr_assert(strstr(s.problems[0].why, "writable by anyone"), "%s", s.problems[0].why);
	cr_assert(strstr(s.problems[1].why, "binary"), "%s", s.problems[1].why);
	cr_assert(strstr(s.problems[2].why, "symbolic link"), "%s", s.problems[2].why);
	cr_assert(strstr(s.problems[3].why, "too large"), "%s", s.problems[3].why);
	sbx_sudoers_free(&s);
	if (geteuid() == 0) {
		p = put("nobodys", 0440, "n ALL=ALL\n");
		cr_assert_eq(chown(p, 65534, 65534), 0);
		sbx_sudoers_read(&s, p, "h", (uid_t)-1);
		cr_assert_eq(s.n_rules, 0);
		cr_assert_eq(s.n_problems, 1);
		cr_assert(strstr(s.problems[0].why, "owned by uid 65534"), "%s", s.problems[0].why);
		sbx_sudoers_free(&s);
	}
}

Test(sudoers, commands_the_policy_covers)
{
	cr_assert(sbx_sudo_cmd_covers("ALL", "ALL"));
	cr_assert(sbx_sudo_cmd_covers("ALL", "/bin/sh"));
	cr_assert_not(sbx_sudo_cmd_covers("/usr/bin/systemctl", "ALL"));
	cr_assert(sbx_sudo_cmd_covers("/usr/bin/systemctl", "/usr/bin/systemctl restart x"));
	cr_assert(sbx_sudo_cmd_covers("/usr/bin/systemctl restart nginx",
				      "/usr/bin/systemctl restart nginx"));
	cr_assert_not(sbx_sudo_cmd_covers("/usr/bin/systemctl restart nginx",
					  "/usr/bin/systemctl"), "any arguments is wider");
	cr_assert_not(sbx_sudo_cmd_covers("/usr/bin/systemctl restart nginx",
					  "/usr/bin/systemctl stop nginx"));
	cr_assert(sbx_sudo_cmd_covers("/usr/bin/systemctl restart *",
				      "/usr/bin/systemctl restart nginx"));
	cr_assert(sbx_sudo_cmd_covers("/usr/sbin/", "/usr/sbin/reboot"));
	cr_assert_not(sbx_sudo_cmd_covers("/usr/sbin/", "/usr/sbin/x/y"));
	cr_assert_not(sbx_sudo_cmd_covers("/usr/bin/less", "/usr/bin/lesskey"));
	cr_assert(sbx_sudo_cmd_covers("/usr/bin/*", "/usr/bin/id"));
	cr_assert_not(sbx_sudo_cmd_covers("/usr/bin/*", "/usr/bin/x/id"));
}

/* ---- the whole scan ----------------------------------------------------------- */

struct fixture {
	struct sbx_drift_input in;
	struct sbx_drift_result r;
};

static void input(struct fixture *F, const char *sudoers_line, bool sudo_set)
{
	static char *allow[] = { "/usr/bin/systemctl restart nginx" };
	struct sbx_drift_role *ro;

	sbx_drift_input_init(&F->in);
	snprintf(F->in.host, sizeof(F->in.host), "sbx-01");
	F->in.conf.enabled = true;
	snprintf(F->in.conf.watch_groups[0], 65, "sudo");
	F->in.conf.n_watch_groups = 1;
	snprintf(F->in.conf.group_file, SBX_SETTINGS_PATH_MAX, "%s/group", dir);
	snprintf(F->in.conf.passwd_file, SBX_SETTINGS_PATH_MAX, "%s/passwd", dir);
	snprintf(F->in.conf.sudoers[0], SBX_SETTINGS_PATH_MAX, "%s/sudoers", dir);
	F->in.conf.n_sudoers = 1;
	snprintf(F->in.conf.authorized_keys[0], SBX_SETTINGS_PATH_MAX, "%%h/keys");
	F->in.conf.n_authorized_keys = 1;
	ro = sbx_drift_input_role(&F->in, "sandbox-admin", "sbx-admin", sudo_set, allow, 1);
	cr_assert_not_null(ro);
	cr_assert_eq(sbx_drift_input_name(&F->in, &ro->justified, "alice", "standing"), 0);
	cr_assert_eq(sbx_drift_input_name(&F->in, &ro->justified, "bob", "grant"), 0);
	cr_assert_eq(sbx_drift_input_name(&F->in, &ro->eligible, "erin", NULL), 0);
	for (const char *const *u = (const char *const[]){ "alice", "bob", "erin", NULL }; *u;
	     u++) {
		cr_assert_eq(sbx_drift_input_name(&F->in, &F->in.users, *u, NULL), 0);
		cr_assert_eq(sbx_drift_input_name(&F->in, &F->in.logins, *u, NULL), 0);
	}
	put("passwd", 0644,
	    "root:x:0:0:root:/root:/bin/bash\n"
	    "alice:x:1000:1000::%s/alice:/bin/bash\n"
	    "mallory:x:1002:1002::%s/mallory:/bin/bash\n"
	    "broken line\n", dir, dir);
	put("group", 0644,
	    "root:x:0:\n"
	    "sudo:x:27:mallory\n"
	    "sbx-admin:x:60001:alice,bob,erin,mallory\n"
	    "other:x:500:mallory\n"
	    "bad:x:notagid:\n");
	put("gshadow", 0600, "sbx-admin:!::eve\n");
	put("sudoers", 0440, "%s\n", sudoers_line);
	sub("mallory");
	sub("alice");
	put("mallory/keys", 0600, "# keys\nssh-ed25519 AAAA m@x\nnot a key\n");
	put("alice/keys", 0600, "ssh-ed25519 AAAA a@x\n");
}

static const struct sbx_drift_finding *find(const struct sbx_drift_result *r,
					    enum sbx_drift_kind k, const char *subject,
					    const char *file_end)
{
	for (size_t i = 0; i < r->n; i++) {
		const struct sbx_drift_finding *f = &r->v[i];
		size_t n = f->file ? strlen(f->file) : 0, m = strlen(file_end);

		if (f->kind == k && strcmp(f->subject, subject) == 0 && n >= m &&
		    strcmp(f->file + n - m, file_end) == 0)
			return f;
	}
	return NULL;
}

static void dump(const struct sbx_drift_result *r)
{
	for (size_t i = 0; i < r->n; i++)
		fprintf(stderr, "finding %d %s %s:%u %s | %s\n", r->v[i].kind, r->v[i].subject,
			r->v[i].file ? r->v[i].file : "-", r->v[i].line, r->v[i].found,
			r->v[i].policy);
}

TestSuite(scan, .init = setup, .fini = teardown);

Test(scan, exactly_the_planted_drift)
{
	struct fixture F;
	const struct sbx_drift_finding *f;

	input(&F, "%sbx-admin ALL=(ALL) ALL", true);
	sbx_drift_scan(&F.in, &F.r);
	dump(&F.r);
	cr_assert_not(F.r.oom);
	cr_assert_eq(F.r.accounts, 3);
	/* members: mallory in sudo and sbx-admin, erin (eligible only) in
	 * sbx-admin, eve in gshadow; alice (standing) and bob (grant) are
	 * justified; "other" is not watched */
	cr_assert_not_null(find(&F.r, SBX_DRIFT_GROUP, "mallory", "/group"));
	f = find(&F.r, SBX_DRIFT_GROUP, "erin", "/group");
	cr_assert_not_null(f);
	cr_assert_eq(f->line, 3);
	cr_assert(strstr(f->policy, "eligible"), "%s", f->policy);
	cr_assert_str_eq(f->user, "erin");
	cr_assert_str_eq(f->group, "sbx-admin");
	cr_assert_not_null(find(&F.r, SBX_DRIFT_GROUP, "eve", "/gshadow"));
	cr_assert_null(find(&F.r, SBX_DRIFT_GROUP, "alice", "/group"));
	cr_assert_null(find(&F.r, SBX_DRIFT_GROUP, "bob", "/group"));
	/* the sudoers rule gives more than sudo.allow */
	f = find(&F.r, SBX_DRIFT_SUDOERS, "%sbx-admin", "/sudoers");
	cr_assert_not_null(f);
	cr_assert(strstr(f->policy, "/usr/bin/systemctl restart nginx"), "%s", f->policy);
	/* mallory has a key and no login; alice has a login */
	f = find(&F.r, SBX_DRIFT_KEYS, "mallory", "/mallory/keys");
	cr_assert_not_null(f);
	cr_assert_eq(f->line, 2, "the first key's line");
	cr_assert_null(find(&F.r, SBX_DRIFT_KEYS, "alice", "/alice/keys"));
	/* bad input, each with its line */
	cr_assert_not_null(find(&F.r, SBX_DRIFT_FILE, F.in.conf.passwd_file, "/passwd"));
	cr_assert_not_null(find(&F.r, SBX_DRIFT_FILE, F.in.conf.group_file, "/group"));
	{
		char keys[600];

		snprintf(keys, sizeof(keys), "%s/mallory/keys", dir);
		f = find(&F.r, SBX_DRIFT_FILE, keys, "/mallory/keys");
		cr_assert_not_null(f);
		cr_assert_eq(f->line, 3);
	}
	cr_assert_eq(F.r.n, 9, "exactly these findings (%zu)", F.r.n);
	sbx_drift_result_free(&F.r);
	sbx_drift_input_free(&F.in);
}

Test(scan, ids_stay_while_lines_move_and_a_role_without_sudo_allows_all)
{
	struct fixture F;
	char id[17];
	const struct sbx_drift_finding *f;

	input(&F, "%sbx-admin ALL=(ALL) ALL", false);
	sbx_drift_scan(&F.in, &F.r);
	cr_assert_null(find(&F.r, SBX_DRIFT_SUDOERS, "%sbx-admin", "/sudoers"),
		       "no sudo: key: every command is in policy");
	f = find(&F.r, SBX_DRIFT_GROUP, "erin", "/group");
	cr_assert_not_null(f);
	cr_assert_eq(f->line, 3);
	memcpy(id, f->id, sizeof(id));
	sbx_drift_result_free(&F.r);
	put("group", 0644, "# moved up\nsbx-admin:x:60001:erin\n");
	sbx_drift_scan(&F.in, &F.r);
	f = find(&F.r, SBX_DRIFT_GROUP, "erin", "/group");
	cr_assert_not_null(f);
	cr_assert_eq(f->line, 2);
	cr_assert_str_eq(f->id, id, "the same finding keeps its id when its line moves");
	sbx_drift_result_free(&F.r);
	sbx_drift_input_free(&F.in);
}

/* An account's own authorized_keys full of lines that are not keys is one
 * finding, not one per line (each finding is a journal record). */
Test(scan, a_keys_file_of_junk_lines_is_one_finding)
{
	struct fixture F;
	char keys[600], *junk = malloc(20000 * 2 + 1);
	const struct sbx_drift_finding *f;
	size_t n = 0;

	cr_assert_not_null(junk);
	for (int i = 0; i < 20000; i++) {
		junk[n++] = 'x';
		junk[n++] = '\n';
	}
	junk[n] = '\0';
	input(&F, "%sbx-admin ALL=(ALL) ALL", true);
	put("mallory/keys", 0600, "ssh-ed25519 AAAA m@x\n%s", junk);
	free(junk);
	sbx_drift_scan(&F.in, &F.r);
	cr_assert_not(F.r.oom);
	snprintf(keys, sizeof(keys), "%s/mallory/keys", dir);
	f = find(&F.r, SBX_DRIFT_FILE, keys, "/mallory/keys");
	cr_assert_not_null(f);
	cr_assert_eq(f->line, 2, "the first line that is not a key");
	cr_assert(strstr(f->policy, "20000 lines"), "%s", f->policy);
	cr_assert_eq(F.r.n, 9, "one finding for the file, not 20000 (%zu)", F.r.n);
	sbx_drift_result_free(&F.r);
	sbx_drift_input_free(&F.in);
}

/* A private mount namespace for this test's process (criterion forks one
 * per test), or skip: mounting needs root. */
static void own_mounts(void)
{
	if (geteuid() != 0 || unshare(CLONE_NEWNS) < 0 ||
	    mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		cr_skip_test("needs root and a mount namespace of its own");
}

struct scan_job {
	struct fixture *F;
};

static void *scan_job(void *arg)
{
	struct scan_job *j = arg;

	sbx_drift_scan(&j->F->in, &j->F->r);
	return NULL;
}

/* A user mounts a FUSE filesystem on their own home (fusermount lets
 * them) and never answers it: the scan must not ask it anything, or it
 * waits for ever and no drift is found again.  The filesystem here is a
 * /dev/fuse fd nobody reads, so its every request waits. */
Test(scan, a_home_on_fuse_that_never_answers_does_not_hold_the_scan)
{
	struct fixture F;
	struct scan_job job = { &F };
	char home[300], opts[128], keys[600];
	const struct sbx_drift_finding *f;
	struct timespec until;
	pthread_t th;
	int fd, rc;

	input(&F, "%sbx-admin ALL=(ALL) ALL", true);
	own_mounts();
	fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		cr_skip_test("no /dev/fuse: %s", strerror(errno));
	snprintf(home, sizeof(home), "%s/mallory", dir);
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0", fd);
	if (mount("sbxtest", home, "fuse", MS_NOSUID | MS_NODEV, opts) < 0)
		cr_skip_test("cannot mount a FUSE filesystem: %s", strerror(errno));
	cr_assert_eq(pthread_create(&th, NULL, scan_job, &job), 0);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 30; /* it takes milliseconds; without the fix, for ever */
	rc = pthread_timedjoin_np(th, NULL, &until);
	if (rc != 0) {
		close(fd); /* the connection is aborted: the waiting lookup fails */
		pthread_join(th, NULL);
		umount2(home, MNT_DETACH);
		cr_assert_fail("the scan waited on the FUSE filesystem");
	}
	snprintf(keys, sizeof(keys), "%s/keys", home);
	f = find(&F.r, SBX_DRIFT_FILE, keys, "/mallory/keys");
	cr_assert_not_null(f, "the keys file is a finding of its own");
	cr_assert(strstr(f->found, "FUSE"), "%s", f->found);
	cr_assert_null(find(&F.r, SBX_DRIFT_KEYS, "mallory", "/mallory/keys"));
	cr_assert_not_null(find(&F.r, SBX_DRIFT_GROUP, "erin", "/group"), "the scan went on");
	close(fd);
	umount2(home, MNT_DETACH);
	sbx_drift_result_free(&F.r);
	sbx_drift_input_free(&F.in);
}

/* The keys file's path crosses a mount point below the home (where a
 * user's FUSE mount would be): not followed, without a lookup in it. */
Test(scan, a_keys_path_through_a_mount_below_the_home_is_not_followed)
{
	struct fixture F;
	char mnt[300], keys[600];
	const struct sbx_drift_finding *f;

	input(&F, "%sbx-admin ALL=(ALL) ALL", true);
	own_mounts();
	sub("mallory/mnt");
	snprintf(mnt, sizeof(mnt), "%s/mallory/mnt", dir);
	cr_assert_eq(mount("sbxtest", mnt, "tmpfs", 0, "mode=0755"), 0, "%s", strerror(errno));
	put("mallory/mnt/keys", 0600, "ssh-ed25519 AAAA m@x\n");
	snprintf(F.in.conf.authorized_keys[1], SBX_SETTINGS_PATH_MAX, "%%h/mnt/keys");
	F.in.conf.n_authorized_keys = 2;
	sbx_drift_scan(&F.in, &F.r);
	snprintf(keys, sizeof(keys), "%s/keys", mnt);
	f = find(&F.r, SBX_DRIFT_FILE, keys, "/mallory/mnt/keys");
	cr_assert_not_null(f);
	cr_assert(strstr(f->found, "leaves the home directory's filesystem"), "%s", f->found);
	cr_assert_null(find(&F.r, SBX_DRIFT_KEYS, "mallory", "/mallory/mnt/keys"));
	cr_assert_not_null(find(&F.r, SBX_DRIFT_KEYS, "mallory", "/mallory/keys"),
			   "the key beside it is read as before");
	umount2(mnt, MNT_DETACH);
	sbx_drift_result_free(&F.r);
	sbx_drift_input_free(&F.in);
}

Test(scan, an_unreadable_group_file_is_a_finding_and_the_scan_goes_on)
{
	struct fixture F;
	char g[600];

	input(&F, "trudy ALL=ALL", true);
	snprintf(g, sizeof(g), "%s/group", dir);
	cr_assert_eq(unlink(g), 0);
	cr_assert_eq(symlink("/etc/group", g), 0);
	sbx_drift_scan(&F.in, &F.r);
	dump(&F.r);
	cr_assert_eq(F.r.n_failed, 1);
	cr_assert_str_eq(F.r.failed[0], g);
	cr_assert_not_null(find(&F.r, SBX_DRIFT_FILE, g, "/group"));
	cr_assert(strstr(find(&F.r, SBX_DRIFT_FILE, g, "/group")->found, "symbolic link"));
	cr_assert_not_null(find(&F.r, SBX_DRIFT_SUDOERS, "trudy", "/sudoers"),
			   "the sudoers are still read");
	sbx_drift_result_free(&F.r);
	sbx_drift_input_free(&F.in);
}

Test(scan, sshds_authorized_keys_file)
{
	struct fixture F;
	char want[600];
	const struct sbx_drift_finding *f;

	input(&F, "root ALL=ALL", true);
	snprintf(F.in.conf.authorized_keys[0], SBX_SETTINGS_PATH_MAX, "sshd");
	snprintf(F.in.conf.sshd_config, SBX_SETTINGS_PATH_MAX, "%s/sshd_config", dir);
	put("sshd_config", 0644,
	    "# sshd\nPort 22\nauthorizedkeysfile %s/sshkeys/%%u keys\n"
	    "Match User alice\n  AuthorizedKeysFile /nowhere/%%u\n", dir);
	sub("sshkeys");
	put("sshkeys/mallory", 0644, "ssh-rsa AAAA m@x\n");
	sbx_drift_scan(&F.in, &F.r);
	dump(&F.r);
	snprintf(want, sizeof(want), "%s/sshkeys/mallory", dir);
	f = find(&F.r, SBX_DRIFT_KEYS, "mallory", "/sshkeys/mallory");
	cr_assert_not_null(f, "the absolute pattern, %%u expanded");
	cr_assert_str_eq(f->file, want);
	cr_assert_not_null(find(&F.r, SBX_DRIFT_KEYS, "mallory", "/mallory/keys"),
			   "a relative one is under the home");
	cr_assert_eq(F.r.key_files, 3, "alice's and mallory's keys, mallory's sshkeys (%zu)",
		     F.r.key_files);
	sbx_drift_result_free(&F.r);
	sbx_drift_input_free(&F.in);
}

Test(scan, remove_takes_members_out_of_the_roles_group_only)
{
	struct fixture F;
	char buf[512], path[600];
	FILE *f;
	size_t n;

	input(&F, "root ALL=ALL", true);
	F.in.conf.remediate[SBX_DRIFT_GROUP] = SBX_DRIFT_REMOVE;
	sbx_drift_scan(&F.in, &F.r);
	cr_assert_eq(F.r.n_acts, 3, "erin, mallory (group), eve (gshadow): %zu", F.r.n_acts);
	for (size_t i = 0; i < F.r.n_acts; i++) {
		cr_assert_null(F.r.acts[i].error, "%s", F.r.acts[i].error);
		cr_assert_not_null(F.r.acts[i].backup);
		{
			/* FILE.sbx-YYYYMMDDTHHMMSSZ, today's date */
			char want[32];
			time_t now = time(NULL);
			struct tm tm;
			const char *stamp = strrchr(F.r.acts[i].backup, '-');

			gmtime_r(&now, &tm);
			strftime(want, sizeof(want), "%Y%m%dT", &tm);
			cr_assert(stamp && strncmp(stamp + 1, want, 9) == 0 &&
				  strlen(stamp + 1) == 16 && stamp[16] == 'Z', "%s", F.r.acts[i].backup);
		}
		f = fopen(F.r.acts[i].backup, "r");
		cr_assert_not_null(f);
		n = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n] = '\0';
		fclose(f);
		cr_assert_eq(strlen(buf), n, "the backup is the file as it was, no NUL in it");
		cr_assert(strstr(buf, "sbx-admin:") && n && buf[n - 1] == '\n', "%s", buf);
	}
	snprintf(path, sizeof(path), "%s/group", dir);
	f = fopen(path, "r");
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	cr_assert(strstr(buf, "sbx-admin:x:60001:alice,bob\n"), "%s", buf);
	cr_assert(strstr(buf, "sudo:x:27:mallory\n"), "a watched group is never changed: %s", buf);
	cr_assert(strstr(buf, "other:x:500:mallory\n"), "%s", buf);
	cr_assert(strstr(buf, "bad:x:notagid:\n"), "other lines are kept as they are: %s", buf);
	sbx_drift_result_free(&F.r);
	sbx_drift_input_free(&F.in);
}

/* ---- the policy's drift: section ---------------------------------------------- */

static const char base[] =
	"broker: { host: sbx-01 }\n"
	"users: { alice: {} }\n"
	"roles:\n"
	"  admin:\n"
	"    hosts: [\"sbx-*\"]\n"
	"    unix_group: { name: sbx-admin, gid: 60001 }\n"
	"    eligible: { users: [alice] }\n"
	"    auto_approve: true\n";

static int load(const char *extra, struct sbx_policy **p, struct sbx_settings *st,
		struct sbx_policy_errors *e)
{
	char buf[4096];

	snprintf(buf, sizeof(buf), "%s%s", base, extra);
	return sbx_policy_load_buffer(buf, strlen(buf), "t.yaml", p, st, e);
}

Test(policy, drift_defaults_and_keys)
{
	struct sbx_policy *p = NULL;
	struct sbx_settings st;
	struct sbx_policy_errors e = { 0 };

	cr_assert_eq(load("", &p, &st, &e), 0);
	cr_assert_not(st.drift.enabled, "no section: no scan");
	sbx_policy_free(p);
	cr_assert_eq(load("drift: {}\n", &p, &st, &e), 0);
	cr_assert(st.drift.enabled);
	cr_assert_eq(st.drift.interval, 900);
	cr_assert_eq(st.drift.n_watch_groups, 4);
	cr_assert_str_eq(st.drift.watch_groups[3], "root");
	cr_assert_str_eq(st.drift.group_file, "/etc/group");
	cr_assert_str_eq(st.drift.sudoers[1], "/etc/sudoers.d");
	cr_assert_str_eq(st.drift.authorized_keys[1], "sshd");
	cr_assert_str_eq(st.drift.utmp_file, "/var/run/utmp");
	cr_assert_eq(st.drift.remediate[SBX_DRIFT_GROUP], SBX_DRIFT_REPORT);
	cr_assert_eq(p->roles[0].sudo_allow.n, 0, "no sudo: any command");
	sbx_policy_free(p);
	cr_assert_eq(load("    sudo: { allow: [\"/usr/bin/id\", ALL], approve_each: [/bin/sh] }\n"
			  "drift:\n  interval: 1h\n  watch_groups: [wheel]\n"
			  "  group_file: /srv/etc/group\n  sudoers: [/srv/sudoers]\n"
			  "  authorized_keys: [\"%h/.ssh/authorized_keys\", /etc/keys/%u]\n"
			  "  remediate: { group: remove }\n", &p, &st, &e), 0,
		     "%s", e.n ? e.v[0].msg : "");
	cr_assert_eq(st.drift.interval, 3600);
	cr_assert_eq(st.drift.n_watch_groups, 1);
	cr_assert_str_eq(st.drift.group_file, "/srv/etc/group");
	cr_assert_eq(st.drift.n_sudoers, 1);
	cr_assert_eq(st.drift.n_authorized_keys, 2);
	cr_assert_eq(st.drift.remediate[SBX_DRIFT_GROUP], SBX_DRIFT_REMOVE);
	cr_assert_eq(p->roles[0].sudo_allow.n, 2);
	cr_assert_str_eq(p->roles[0].sudo_allow.v[0], "/usr/bin/id");
	sbx_policy_free(p);
}

Test(policy, drift_errors_have_their_place)
{
	struct sbx_policy *p = NULL;
	struct sbx_settings st;
	struct sbx_policy_errors e = { 0 };

	cr_assert_eq(load("drift:\n  interval: 10s\n  remediate: { sudoers: remove }\n"
			  "  group_file: etc/group\n  frob: 1\n", &p, &st, &e), -1);
	cr_assert_eq(e.n, 4, "%zu errors", e.n);
	for (size_t i = 0; i < e.n; i++)
		cr_assert(e.v[i].line >= 10 && e.v[i].line <= 13, "line %d: %s", e.v[i].line,
			  e.v[i].msg);
	cr_assert(strstr(e.v[1].msg, "can only be reported"), "%s", e.v[1].msg);
	sbx_policy_errors_free(&e);
}
