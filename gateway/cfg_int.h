/*
 * What gateway/config.c (load, command line, checks), gateway/cfg_keys.c (the table of
 * every key and its value parsers) and gateway/cfg_file.c (the INI file) share. Nothing
 * else includes this.
 */
#ifndef WSGW_CFG_INT_H
#define WSGW_CFG_INT_H

#include "gateway/config.h"

enum cfg_sect {
	CS_GATEWAY, CS_LISTEN, CS_ROUTE, CS_POOL, CS_WORKER, CS_ADMIN, CS_LIMITS, CS_LOG,
	CS_CLUSTER, CS_N,
};

#define CFG_KEYS_MAX 128

/* One load: where the values come from, what was given, the first error. */
struct cfg_ctx {
	struct gw_config *cfg;
	const char *file;        /* the config file, or NULL on the command line */
	int line;                /* its line being read */
	const char *sect_text;   /* "[route /chat]": the section being read, for errors */
	unsigned char given[CFG_KEYS_MAX]; /* by key index: 0 not given, 1 in the file, 2 command line */
	int file_listens;        /* [listen] sections read; the command line's --listen replaces them */
	int cli_listen, cli_forward; /* the command line gave these (first one clears the file's) */
	int forward_given;
	int history_given, cli_history; /* as forward: the command line's first one replaces */
	const char *why;         /* a setter's reason, said instead of the key's want */
	int key_line[CFG_KEYS_MAX]; /* the file's line of each key given there (global sections) */
	int route_line[CFG_MAX_ROUTES], pool_line[CFG_MAX_POOLS], worker_line[CFG_MAX_WORKERS];
	char err[700];
};

struct cfg_key;
/* Parses v into obj (the section's object: the gw_config, or a route, listen, pool or
 * worker). Returns 0, or -EINVAL (the caller says what was expected, k->want), or -E2BIG
 * with a reason of its own already in x->err. */
typedef int cfg_set_fn(struct cfg_ctx *x, void *obj, const struct cfg_key *k, const char *v);
/* Writes obj's value of k as text (for cfg_format). */
typedef void cfg_get_fn(const void *obj, const struct cfg_key *k, char *out, size_t cap);

struct cfg_key {
	uint8_t sect;         /* enum cfg_sect */
	uint8_t restart;      /* a change takes effect only after a restart */
	uint8_t list;         /* may be given more than once (each adds) */
	const char *name;     /* in the file */
	const char *opt;      /* its command-line option without "--"; NULL: file only */
	cfg_set_fn *set;
	cfg_get_fn *get;
	size_t off;           /* of the field in the section's object */
	uint64_t min, max;    /* numbers: the range; strings: max is the buffer's size */
	const char *const *words; /* enums: the words, in the order of their values */
	const char *want;     /* what a value must be, for errors and the reference */
	const char *help;     /* one line for --help and the reference */
};

extern const struct cfg_key cfg__keys[];
extern const int cfg__n_keys;
extern const char *const cfg__sect_names[CS_N];

/* The key of section sect named name, or NULL. */
const struct cfg_key *cfg__key_find(int sect, const char *name);
/* The index of key k in the table. */
int cfg__key_index(const struct cfg_key *k);
/* Parses v for k into obj, recording the error (with the file and line, or the option)
 * in x->err. Returns 0 or -EINVAL. */
int cfg__apply(struct cfg_ctx *x, void *obj, const struct cfg_key *k, const char *v);
/* Sets an error message (prefixed with the file and line when x->file is set). */
void cfg__fail(struct cfg_ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The defaults of a new route, pool and worker. */
void cfg__route_init(struct cfg_route *r);
void cfg__pool_init(struct cfg_pool *p, const char *name);
void cfg__worker_init(struct cfg_worker *w, const char *name);
/* "127.0.0.1:8080", "[::1]:8080" or "*:8080" into l. Returns 0 or -EINVAL. */
int cfg__parse_listen(const char *s, struct cfg_listen *l);
/* A route's prefix: "/chat/" is "/chat". Returns 0, or -EINVAL (not starting with '/', too
 * long). */
int cfg__set_prefix(struct cfg_route *r, const char *s, size_t n);

/* Reads the INI file x->file into x->cfg. Returns 0, or -EINVAL with x->err set. */
int cfg__read_file(struct cfg_ctx *x);

#endif
