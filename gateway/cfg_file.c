/*
 * The config file: INI sections parsed by libinih, names checked exactly against the key
 * table. libinih reads lines through our reader, which counts them (so every error names
 * its line), checks section headers and the shape of each line before libinih sees it,
 * and stops at the first error.
 */
#include "gateway/cfg_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LINE_MAX_BYTES 4096
#define FILE_MAX_BYTES (1 << 20)

struct reader {
	struct cfg_ctx *x;
	FILE *f;
	int sect;            /* enum cfg_sect; -1 before the first section */
	void *obj;           /* what its keys set */
	int sect_line;       /* where it began */
	char sect_text[300]; /* "[route /chat]", for errors */
	unsigned char seen[CFG_KEYS_MAX]; /* keys given in this section (not lists) */
	int seen_line[CFG_KEYS_MAX];
	int once_line[CS_N]; /* where a section without a name began; 0: not yet */
	int stop;
};

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = 0;
	return s;
}

/* What the section that ends now must have. Returns 0 or -EINVAL (x->err set). */
static int end_section(struct reader *rd)
{
	struct cfg_ctx *x = rd->x;
	int line = x->line;
	x->line = rd->sect_line;
	int rc = 0;
	if (rd->sect == CS_ROUTE && !((struct cfg_route *)rd->obj)->pool[0])
		cfg__fail(x, "%s: expected a line 'pool = NAME'", rd->sect_text), rc = -EINVAL;
	else if (rd->sect == CS_LISTEN && !((struct cfg_listen *)rd->obj)->len)
		cfg__fail(x, "%s: expected a line 'address = ADDR:PORT'", rd->sect_text), rc = -EINVAL;
	else if (rd->sect == CS_WORKER && !((struct cfg_worker *)rd->obj)->command[0])
		cfg__fail(x, "%s: expected a line 'command = ...'", rd->sect_text), rc = -EINVAL;
	x->line = line;
	return rc;
}

/* "[kind NAME]" (or "[kind]"): a new section, or -EINVAL with x->err set. */
static int begin_section(struct reader *rd, char *line)
{
	struct cfg_ctx *x = rd->x;
	struct gw_config *cfg = x->cfg;
	char *close = strrchr(line, ']');
	if (!close || trim(close + 1)[0]) {
		cfg__fail(x, "expected a section header '[NAME]' (got '%s')", line);
		return -EINVAL;
	}
	*close = 0;
	char *in = trim(line + 1);
	size_t kl = strcspn(in, " \t");
	char *name = trim(in + kl);
	in[kl] = 0;
	snprintf(rd->sect_text, sizeof(rd->sect_text), "[%s%s%s]", in, name[0] ? " " : "", name);
	int sect = -1;
	for (int i = 0; i < CS_N; i++)
		if (strcmp(in, cfg__sect_names[i]) == 0)
			sect = i;
	if (sect < 0) {
		cfg__fail(x, "unknown section %s: expected [gateway], [listen NAME], [route PREFIX], [pool NAME], [worker NAME], [admin], [limits], [log] or [cluster]",
			  rd->sect_text);
		return -EINVAL;
	}
	int named = sect == CS_LISTEN || sect == CS_ROUTE || sect == CS_POOL || sect == CS_WORKER;
	if (named != !!name[0]) {
		cfg__fail(x, named ? "%s: expected a name: [%s NAME]" : "%s: expected no name: [%s]",
			  rd->sect_text, in);
		return -EINVAL;
	}
	if (named && sect != CS_ROUTE) {
		for (const char *p = name; *p; p++)
			if (!isalnum((unsigned char)*p) && !strchr("-_.", *p)) {
				cfg__fail(x, "%s: expected a name of letters, digits, '-', '_' and '.'",
					  rd->sect_text);
				return -EINVAL;
			}
		if (strlen(name) >= CFG_NAME_MAX) {
			cfg__fail(x, "%s: expected a name of at most %d bytes", rd->sect_text, CFG_NAME_MAX - 1);
			return -EINVAL;
		}
	}
	/* A second section of the same name would silently win: refused. */
	const char *dup = NULL;
	void *obj = cfg;
	switch (sect) {
	case CS_LISTEN:
		for (int i = 0; i < cfg->n_listen && !dup; i++)
			if (!strcmp(cfg->listen[i].name, name))
				dup = name;
		if (!dup && cfg->n_listen == CFG_MAX_LISTEN) {
			cfg__fail(x, "%s: expected at most %d [listen] sections", rd->sect_text, CFG_MAX_LISTEN);
			return -EINVAL;
		}
		obj = &cfg->listen[cfg->n_listen++];
		memset(obj, 0, sizeof(struct cfg_listen));
		snprintf(((struct cfg_listen *)obj)->name, CFG_NAME_MAX, "%s", name);
		x->file_listens++;
		break;
	case CS_ROUTE: {
		struct cfg_route r;
		cfg__route_init(&r);
		if (cfg__set_prefix(&r, name, strlen(name))) {
			cfg__fail(x, "%s: expected a path prefix starting with '/' (at most 255 bytes, no spaces)",
				  rd->sect_text);
			return -EINVAL;
		}
		for (int i = 0; i < cfg->n_routes && !dup; i++)
			if (!strcmp(cfg->routes[i].prefix, r.prefix))
				dup = r.prefix;
		if (!dup && cfg->n_routes == CFG_MAX_ROUTES) {
			cfg__fail(x, "%s: expected at most %d routes", rd->sect_text, CFG_MAX_ROUTES);
			return -EINVAL;
		}
		x->route_line[cfg->n_routes] = x->line;
		obj = &cfg->routes[cfg->n_routes++];
		*(struct cfg_route *)obj = r;
		break;
	}
	case CS_POOL:
		for (int i = 0; i < cfg->n_pools && !dup; i++)
			if (!strcmp(cfg->pools[i].name, name))
				dup = name;
		if (!dup && cfg->n_pools == CFG_MAX_POOLS) {
			cfg__fail(x, "%s: expected at most %d [pool] sections", rd->sect_text, CFG_MAX_POOLS);
			return -EINVAL;
		}
		x->pool_line[cfg->n_pools] = x->line;
		obj = &cfg->pools[cfg->n_pools++];
		cfg__pool_init(obj, name);
		break;
	case CS_WORKER:
		for (int i = 0; i < cfg->n_workers && !dup; i++)
			if (!strcmp(cfg->workers[i].name, name))
				dup = name;
		if (!dup && cfg->n_workers == CFG_MAX_WORKERS) {
			cfg__fail(x, "%s: expected at most %d [worker] sections", rd->sect_text, CFG_MAX_WORKERS);
			return -EINVAL;
		}
		x->worker_line[cfg->n_workers] = x->line;
		obj = &cfg->workers[cfg->n_workers++];
		cfg__worker_init(obj, name);
		break;
	default:
		if (rd->once_line[sect]) {
			cfg__fail(x, "%s: this section is given twice (first on line %d)", rd->sect_text,
				  rd->once_line[sect]);
			return -EINVAL;
		}
		rd->once_line[sect] = x->line;
		break;
	}
	if (dup) {
		cfg__fail(x, "%s: this section is given twice", rd->sect_text);
		return -EINVAL;
	}
	rd->sect = sect;
	rd->obj = obj;
	x->sect_text = rd->sect_text;
	rd->sect_line = x->line;
	memset(rd->seen, 0, sizeof(rd->seen));
	return 0;
}

/* Each line passes here before libinih sees it: counted, and checked for what libinih
 * would take wrongly or report without a reason. */
static char *read_line(char *buf, int cap, void *arg)
{
	struct reader *rd = arg;
	struct cfg_ctx *x = rd->x;
	if (rd->stop || !fgets(buf, cap, rd->f))
		return NULL;
	x->line++;
	size_t n = strlen(buf);
	if (n == (size_t)cap - 1 && buf[n - 1] != '\n' && !feof(rd->f)) {
		cfg__fail(x, "expected a line of at most %d bytes", cap - 2);
		rd->stop = 1;
		return NULL;
	}
	char copy[LINE_MAX_BYTES];
	snprintf(copy, sizeof(copy), "%s", buf);
	char *s = trim(copy);
	if (x->line == 1 && (unsigned char)s[0] == 0xef) /* a UTF-8 byte order mark */
		s = trim(s + 3 <= copy + strlen(copy) && !memcmp(s, "\xef\xbb\xbf", 3) ? s + 3 : s);
	if (!s[0] || s[0] == '#' || s[0] == ';')
		return buf;
	if (s[0] == '[') {
		if ((rd->sect >= 0 && end_section(rd)) || begin_section(rd, s)) {
			rd->stop = 1;
			return NULL;
		}
		return buf;
	}
	if (!strchr(s, '=')) {
		cfg__fail(x, "expected 'key = value' (got '%s')", s);
		rd->stop = 1;
		return NULL;
	}
	if (rd->sect < 0) {
		cfg__fail(x, "expected a section header such as [gateway] before '%s'", s);
		rd->stop = 1;
		return NULL;
	}
	return buf;
}

static int on_key(void *arg, const char *section, const char *name, const char *value)
{
	struct reader *rd = arg;
	struct cfg_ctx *x = rd->x;
	(void)section;
	if (rd->stop)
		return 0;
	const struct cfg_key *k = cfg__key_find(rd->sect, name);
	if (!k) {
		char known[1024];
		size_t n = 0;
		known[0] = 0;
		for (int i = 0; i < cfg__n_keys && n < sizeof(known); i++)
			if (cfg__keys[i].sect == rd->sect)
				n += (size_t)snprintf(known + n, sizeof(known) - n, "%s%s", n ? ", " : "",
						      cfg__keys[i].name);
		cfg__fail(x, "unknown key '%s' in %s: expected one of %s", name, rd->sect_text,
			  n ? known : "(none yet)");
		rd->stop = 1;
		return 0;
	}
	int idx = cfg__key_index(k);
	if (!k->list && rd->seen[idx]) {
		cfg__fail(x, "%s %s is given twice (first on line %d)", rd->sect_text, name,
			  rd->seen_line[idx]);
		rd->stop = 1;
		return 0;
	}
	rd->seen[idx] = 1;
	rd->seen_line[idx] = x->line;
	/* "a value" and 'a value' are the value without its quotes. */
	char v[LINE_MAX_BYTES];
	size_t vl = strlen(value);
	if (vl >= 2 && (value[0] == '"' || value[0] == '\'') && value[vl - 1] == value[0]) {
		memcpy(v, value + 1, vl - 2);
		v[vl - 2] = 0;
	} else {
		snprintf(v, sizeof(v), "%s", value);
	}
	if (cfg__apply(x, rd->obj, k, v)) {
		rd->stop = 1;
		return 0;
	}
	x->given[idx] = 1;
	x->key_line[idx] = x->line;
	return 1;
}

int cfg__read_file(struct cfg_ctx *x)
{
	/* Opened first, then checked on the descriptor: no race with a swap in between. A
	 * FIFO would block the open, so O_NONBLOCK until it is known to be a file. */
	int fd = open(x->file, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	struct stat st;
	const char *file = x->file;
	x->file = NULL; /* errors about the file itself name it without a line */
	if (fd < 0) {
		cfg__fail(x, "config file %s: cannot be read: %s", file, strerror(errno));
		return -EINVAL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		cfg__fail(x, "config file %s: expected a regular file (it is %s)", file,
			  S_ISDIR(st.st_mode) ? "a directory" : "not a regular file");
		close(fd);
		return -EINVAL;
	}
	if (st.st_size > FILE_MAX_BYTES) {
		cfg__fail(x, "config file %s: expected at most %d bytes (it has %lld)", file,
			  FILE_MAX_BYTES, (long long)st.st_size);
		close(fd);
		return -EINVAL;
	}
	fcntl(fd, F_SETFL, 0);
	FILE *f = fdopen(fd, "r");
	if (!f) {
		cfg__fail(x, "config file %s: %s", file, strerror(errno));
		close(fd);
		return -EINVAL;
	}
	x->file = file;
	x->line = 0;
	/* libinih's knobs, set for our syntax: '#' and ';' comments (inline after a space), no
	 * continuation lines (an indented line is a key of its own), long lines. */
	ini_allow_multiline = 0;
	ini_allow_inline_comments = 1;
	ini_inline_comment_prefixes = (char *)"#;";
	ini_start_comment_prefixes = (char *)"#;";
	ini_stop_on_first_error = 1;
	ini_allow_no_value = 0;
	ini_max_line = LINE_MAX_BYTES;
	ini_use_stack = 0;
	ini_initial_alloc = LINE_MAX_BYTES;
	ini_allow_realloc = 0;
	struct reader rd = { .x = x, .f = f, .sect = -1 };
	int rc = ini_parse_stream(read_line, &rd, on_key, &rd);
	if (!x->err[0] && ferror(f))
		cfg__fail(x, "read error: %s", strerror(errno));
	if (!x->err[0] && rc > 0) {
		x->line = rc;
		cfg__fail(x, "expected 'key = value'");
	} else if (!x->err[0] && rc < 0) {
		cfg__fail(x, "out of memory reading it");
	}
	if (!x->err[0] && rd.sect >= 0)
		end_section(&rd);
	fclose(f);
	x->sect_text = NULL;
	return x->err[0] ? -EINVAL : 0;
}
