/*
 * What the benches share: latency samples and their percentiles, option
 * parsing, a description of the machine, and a private
 * sbx-brokerd started in a temporary directory and removed afterwards.
 *
 * The numbers are printed, never asserted: these are measuring tools, not
 * tests.
 */
#ifndef SBX_BENCHLIB_H
#define SBX_BENCHLIB_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "sbxio.h"

/* Reply deadline for every call: generous, so that an overloaded broker
 * shows up as latency, not as errors. */
#define BENCH_TIMEOUT_MS 10000
/* Most client threads a run may start. */
#define BENCH_MAX_CLIENTS 1024
/* Most concurrency levels on one command line. */
#define BENCH_MAX_LEVELS 16

/* Set by SIGINT/SIGTERM: every loop ends early and the broker is stopped
 * and its directory removed all the same. */
extern volatile sig_atomic_t bench_interrupted;
int bench_catch_signals(void);

int64_t bench_now_ns(void);

/* Latencies of one run, in nanoseconds. */
struct bench_samples {
	int64_t *v;
	size_t n;
	size_t cap;
};

int bench_samples_add(struct bench_samples *s, int64_t ns);
/* Move every sample of src into dst (src is emptied). */
int bench_samples_take(struct bench_samples *dst, struct bench_samples *src);
void bench_samples_free(struct bench_samples *s);

struct bench_stats {
	size_t n;
	double mean_us, p50_us, p90_us, p99_us, max_us;
};

/* Sorts s in place; percentiles by nearest rank on the sorted samples. */
void bench_stats_compute(struct bench_samples *s, struct bench_stats *st);
void bench_stats_print(FILE *out, const struct bench_stats *st);

/* Strict number parsing (whole string, range-checked): 0 or -1. */
int bench_parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out);
/* Seconds, fractions allowed ("0.5", "10"), > 0 and <= 3600. */
int bench_parse_seconds(const char *s, double *out);
/* "1,8,32" -> {1, 8, 32}; each in [1, BENCH_MAX_CLIENTS]. */
int bench_parse_levels(const char *s, unsigned *levels, size_t *n);

/* A bench's command-line options, as a table. */
enum bench_opt_kind {
	BENCH_OPT_ULONG,     /* unsigned long in [min, max] */
	BENCH_OPT_ULONG_OPT, /* the same, the value optional (then def) */
	BENCH_OPT_SECONDS,   /* double, bench_parse_seconds */
	BENCH_OPT_SECONDS0,  /* the same, or "0" */
	BENCH_OPT_LEVELS,    /* unsigned[BENCH_MAX_LEVELS] at dst, its count at dst2 (size_t) */
	BENCH_OPT_STRING,    /* const char * (points into argv) */
	BENCH_OPT_PATH,      /* copied into char[size] */
	BENCH_OPT_FLAG,      /* bool */
};

struct bench_opt {
	const char *name;
	enum bench_opt_kind kind;
	void *dst;
	void *dst2;
	size_t size;
	unsigned long min, max, def;
};

/* Parse argv against opts (n of them).  --help prints usage and exits 0.
 * Returns 0, or -1 after saying on stderr which option, and what value,
 * prog did not take. */
int bench_parse_args(const char *prog, const char *usage, int argc, char **argv,
		     const struct bench_opt *opts, size_t n);

/* nproc, CPU model, kernel, and the file system holding dir (NULL: skip). */
void bench_print_machine(FILE *out, const char *dir);
/* "LABEL    DIR on FS (type 0x...)": where durable numbers are made. */
void bench_print_fs(FILE *out, const char *label, const char *dir);

/* CPU seconds (user + system) used so far by pid (0: this process);
 * negative when unknown. */
double bench_cpu_seconds(pid_t pid);

/* Where sbx-brokerd and the reference policy are, when not given:
 * beside the build tree this program was built in. */
int bench_default_broker(char *buf, size_t len);
int bench_reference_policy(char *buf, size_t len);

/* A private broker in its own temporary directory. */
struct bench_broker {
	char dir[256];       /* mkdtemp'd; removed by bench_broker_cleanup() */
	char config[320];
	char socket[108];
	char state_dir[320];
	char log[320];       /* the broker's stderr */
	char host[64];       /* "": the policy's broker.host; else --host NAME (set it
	                      * after bench_broker_prepare, which clears b) */
	pid_t pid;           /* 0 when not running */
};

/* Create the temporary directory (under $TMPDIR or /tmp) and its paths. */
int bench_broker_prepare(struct bench_broker *b, const char *prog, char *err, size_t errlen);
/* Copy src to b->config. */
int bench_broker_copy_config(struct bench_broker *b, const char *src, char *err, size_t errlen);
/* Start `broker --foreground --config --socket --state-dir [--host]`,
 * then wait until it answers PING (or dies, or timeout_ms passes). */
int bench_broker_start(struct bench_broker *b, const char *broker, int timeout_ms,
		       char *err, size_t errlen);
/* SIGTERM, wait (SIGKILL after a grace period).  Returns its exit status,
 * or -1. */
int bench_broker_stop(struct bench_broker *b);
/* Stop it if still running, print its log on request, remove the directory. */
void bench_broker_cleanup(struct bench_broker *b, bool show_log);
/* Print the last lines of the broker's log to out. */
void bench_broker_print_log(const struct bench_broker *b, FILE *out);

/* One PING: the broker's host and last journal seq.  0 or negative errno. */
int bench_ping(const char *socket, int require_root, char *host, size_t hostlen,
	       int64_t *seq, char *err, size_t errlen);

/* Run fn(args[i]) in n threads that start together.  *t0_ns is set to the
 * start time before any thread runs, so that threads can compute their
 * deadline from it.  Returns once all have finished, with the wall time
 * from the start to the last finish.  0 or -1 (could not start the
 * threads; none is left running). */
int bench_run_threads(unsigned n, void *(*fn)(void *), void **args, int64_t *t0_ns,
		      double *wall_s);

#endif
