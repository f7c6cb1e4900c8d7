/*
 * Tests of the config file (gateway/cfg_file.c, gateway/cfg_keys.c): every key with a good
 * and a bad value, every error with its line, files that are not files, the command line
 * over the file, and the reference in docs/OPERATIONS.md and the packaged wsgw.conf
 * against the parser's own table. Run from the source tree (make check does).
 */
#include "gateway/config.h"
#include "gateway/log.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define REQUIRE_MSG(cond, ...) do { if (!(cond)) ck_abort_msg(__VA_ARGS__); } while (0)

static struct gw_config cfg;
static char path[64];
static char shown[65536];

static void write_file(const char *p, const char *text)
{
	FILE *f = fopen(p, "w");
	ck_assert_msg(f != NULL, "fopen(%s)", p);
	fputs(text, f);
	fclose(f);
}

/* cfg_load on "wsgw" + args (static: cfg_reload uses them again). */
static int loadv(const char *const *args)
{
	static char *argv[64];
	int argc = 0;
	argv[argc++] = "wsgw";
	while (*args)
		argv[argc++] = (char *)*args++;
	argv[argc] = NULL;
	/* Warnings are log lines on stderr, --help and --check-config's verdict go to
	 * stdout: not this test's business. */
	fflush(stdout);
	fflush(stderr);
	int so = dup(1), se = dup(2), dn = open("/dev/null", O_WRONLY);
	dup2(dn, 1);
	dup2(dn, 2);
	int rc = cfg_load(&cfg, argc, argv);
	fflush(stdout);
	dup2(so, 1);
	dup2(se, 2);
	close(so);
	close(se);
	close(dn);
	return rc;
}
#define load(...) loadv((const char *const[]){ __VA_ARGS__, NULL })

/* Loads text as the config file. */
static int load_text(const char *text)
{
	write_file(path, text);
	return load("--config", path);
}

static void setup(void)
{
	snprintf(path, sizeof(path), "/tmp/wsgw-cfgtest.%d.conf", (int)getpid());
}

static void teardown(void)
{
	unlink(path);
}

/* "[section NAME]" ... "key = value" in the settings in force (cfg_format). */
static int shows(const char *header, const char *key, const char *value)
{
	ck_assert_int_gt(cfg_format(&cfg, 0, shown, sizeof(shown)), 0);
	char want[1200];
	const char *sec = strstr(shown, header);
	if (!sec)
		return 0;
	const char *end = strstr(sec + 1, "\n[");
	snprintf(want, sizeof(want), "\n%s = %s\n", key, value);
	const char *at = strstr(sec, want);
	return at && (!end || at < end);
}

/* ---- every key ---- */

struct sample {
	const char *key;    /* section.key */
	const char *good, *shown, *bad;
	const char *extra;  /* lines of the section before the key's */
	const char *pre;    /* sections before the key's section */
};

/* Most samples need no extra lines: the member is left out. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const struct sample samples[] = {
	{ "gateway.control", "tcp://127.0.0.1:5555", NULL, "nowhere" },
	{ "gateway.runtime-dir", "/run/x", NULL, "relative/dir" },
	{ "gateway.group", "root", NULL, "no-such-group-wsgw" },
	{ "gateway.socket-mode", "0660", NULL, "0644" },
	{ "gateway.heartbeat", "0.25", "0.250", "0" },
	{ "gateway.handshake-timeout", "3", NULL, "-1" },
	{ "gateway.idle-timeout", "7", NULL, "x" },
	{ "gateway.ping-timeout", "2.5", "2.500", "inf" },
	{ "gateway.close-timeout", "4", NULL, "nan" },
	{ "gateway.authorize-timeout", "6", NULL, "" },
	{ "gateway.orphan-timeout", "9", NULL, "9s" },
	{ "gateway.ring-size", "8388608", NULL, "6000" },
	{ "gateway.zmq-window", "64", NULL, "0" },
	{ "gateway.zmq-window-bytes", "65536", NULL, "4095" },
	{ "gateway.loops", "4", NULL, "65" },
	{ "gateway.spread-workers", "yes", NULL, "2" },
	{ "gateway.wake-spin", "50", NULL, "1001" },
	{ "gateway.forward-header", "x-real-ip, Origin", "x-real-ip origin", "" },
	{ "gateway.curve-secret-key", "/etc/k", NULL, "" },
	{ "gateway.curve-clients", "/etc/c", NULL, "", "curve-secret-key = /etc/k\n" },
	{ "gateway.tls-cert", "/etc/c.pem", NULL, "", "tls-key = /etc/k.pem\n", "[listen t]\naddress = 127.0.0.1:0,tls\n" },
	{ "gateway.tls-key", "/etc/k.pem", NULL, "", "tls-cert = /etc/c.pem\n", "[listen t]\naddress = 127.0.0.1:0\ntls = yes\n" },
	{ "gateway.tls-chain", "/etc/ch.pem", NULL, "", "tls-cert = /etc/c.pem\ntls-key = /etc/k.pem\n",
	  "[listen t]\naddress = 127.0.0.1:0,tls\n" },
	{ "gateway.static", "/srv/www", NULL, "" },
	{ "gateway.static-max", "2048", NULL, "0" },
	{ "gateway.deflate-window", "12", NULL, "8" },
	{ "gateway.deflate-level", "9", NULL, "0" },
	{ "gateway.deflate-mem-level", "8", NULL, "10" },
	{ "gateway.deflate-min-size", "0", NULL, "65536" },
	{ "limits.max-message", "2000", NULL, "0" },
	{ "limits.max-header", "4096", NULL, "255" },
	{ "limits.max-outbound", "2097152", NULL, "1023" },
	{ "limits.outbound-policy", "drop", NULL, "Drop" },
	{ "limits.memory-budget", "0", NULL, "1000" },
	{ "limits.max-assembly", "65536", NULL, "100" },
	{ "limits.worker-memory", "65536", NULL, "65535" },
	{ "limits.max-conns", "77", NULL, "0" },
	{ "limits.max-conns-per-ip", "10", NULL, "-1" },
	{ "limits.handshake-rate", "100", NULL, "1.5" },
	{ "limits.handshake-rate-per-ip", "5", NULL, "x" },
	{ "limits.drain-rate", "50", NULL, "10000001" },
	{ "log.level", "debug", NULL, "verbose" },
	{ "log.format", "json", NULL, "xml" },
	{ "admin.address", "127.0.0.1:9090", NULL, "9090" },
	{ "admin.token", "s3cret", "(set)",
	  "0123456789012345678901234567890123456789012345678901234567890123456789"
	  "0123456789012345678901234567890123456789012345678901234567890123456789" },
	{ "listen.address", "[::1]:8081", NULL, "[::1]" },
	{ "listen.tls", "yes", NULL, "maybe", NULL, "[gateway]\ntls-cert = /c\ntls-key = /k\n" },
	{ "route.pool", "chat", NULL, "a/b" },
	{ "route.authorize", "yes", NULL, "maybe" },
	{ "route.protocols", "chat.v2|chat.v1!", NULL, "a||b" },
	{ "route.origins", "https://a.example https://b.example", "https://a.example|https://b.example", "a,b" },
	{ "route.deflate", "takeover", NULL, "yes" },
	{ "route.slow", "latest", NULL, "fast" },
	{ "route.max-message", "1000", NULL, "0" },
	{ "route.max-outbound", "4096", NULL, "1023", "max-message = 1000\n" },
	{ "route.outbound-policy", "drop", NULL, "none" },
	{ "route.idle-timeout", "5", NULL, "0" },
	{ "route.ping-timeout", "3", NULL, "-3" },
	{ "pool.min-workers", "2", NULL, "257" },
	{ "pool.orphan-timeout", "12", NULL, "0" },
	{ "worker.command", "wsgw-echo --pool $WSGW_POOL", NULL, "" },
	{ "worker.pool", "wp", NULL, "a b" },
	{ "worker.instances", "3", NULL, "0" },
	{ "worker.user", "root", NULL, "bad user" },
	{ "worker.restart", "on-failure", NULL, "never" },
	{ "worker.backoff", "0.1", "0.100", "0" },
	{ "worker.backoff-max", "60", NULL, "x" },
	{ "cluster.redis", "redis://10.0.0.5:6380/2", NULL, "http://10.0.0.5" },
	{ "cluster.node-id", "7", NULL, "4096" },
	{ "cluster.ttl", "2.5", "2.500", "0.1" },
	{ "cluster.hold", "100", NULL, "0" },
	{ "cluster.history", "room/=100,60", NULL, "room/=0" },
};
#define N_SAMPLES ((int)(sizeof(samples) / sizeof(samples[0])))

static int key_count(void)
{
	struct cfg_key_info ki;
	int n = 0;
	while (cfg_key_info(n, &ki) == 0)
		n++;
	return n;
}

static const struct sample *sample_for(const struct cfg_key_info *ki)
{
	char name[96];
	snprintf(name, sizeof(name), "%s.%s", ki->section, ki->name);
	for (int i = 0; i < N_SAMPLES; i++)
		if (strcmp(samples[i].key, name) == 0)
			return &samples[i];
	return NULL;
}

/* A file whose line *line is "key = value" in the key's section, with what the section
 * needs around it. */
static void key_file(const struct cfg_key_info *ki, const struct sample *sm, const char *value,
		     char *out, size_t cap, int *line, char *header, size_t hcap)
{
	size_t n = 0;
	const char *s = ki->section;
	int named = !strcmp(s, "listen") || !strcmp(s, "route") || !strcmp(s, "pool") || !strcmp(s, "worker");
	n += (size_t)snprintf(out + n, cap - n, "# the key %s.%s\n", s, ki->name);
	if (sm->pre)
		n += (size_t)snprintf(out + n, cap - n, "%s", sm->pre);
	if (!strcmp(s, "pool") || !strcmp(s, "worker"))
		n += (size_t)snprintf(out + n, cap - n, "[route /w]\npool = wp\n");
	snprintf(header, hcap, named ? "[%s %s]" : "[%s]", s,
		 !strcmp(s, "listen") ? "main" : !strcmp(s, "route") ? "/r" : "wp");
	n += (size_t)snprintf(out + n, cap - n, "%s\n", header);
	if (!strcmp(s, "route") && strcmp(ki->name, "pool"))
		n += (size_t)snprintf(out + n, cap - n, "pool = wp\n");
	if (!strcmp(s, "listen") && strcmp(ki->name, "address"))
		n += (size_t)snprintf(out + n, cap - n, "address = 127.0.0.1:0\n");
	if (!strcmp(s, "worker") && strcmp(ki->name, "command"))
		n += (size_t)snprintf(out + n, cap - n, "command = true\n");
	if (sm->extra)
		n += (size_t)snprintf(out + n, cap - n, "%s", sm->extra);
	*line = 1;
	for (size_t i = 0; i < n; i++)
		*line += out[i] == '\n';
	n += (size_t)snprintf(out + n, cap - n, "%s = %s\n", ki->name, value);
	snprintf(out + n, cap - n, "# after it\n");
}

START_TEST(test_file_every_key)
{
	struct cfg_key_info ki;
	char text[4096], header[128], want[256];
	int line;
	ck_assert_int_eq(cfg_key_info(_i, &ki), 0);
	const struct sample *sm = sample_for(&ki);
	REQUIRE_MSG(sm, "[%s] %s has no sample in this test", ki.section, ki.name);

	key_file(&ki, sm, sm->good, text, sizeof(text), &line, header, sizeof(header));
	int rc = load_text(text);
	REQUIRE_MSG(rc == 0, "%s = %s refused: %s\n%s", ki.name, sm->good, cfg_error(), text);
	REQUIRE_MSG(shows(header, ki.name, sm->shown ? sm->shown : sm->good),
		    "%s %s = %s is not what the settings in force show:\n%s", header, ki.name,
		    sm->shown ? sm->shown : sm->good, shown);

	key_file(&ki, sm, sm->bad, text, sizeof(text), &line, header, sizeof(header));
	rc = load_text(text);
	REQUIRE_MSG(rc == -EINVAL, "%s = '%s' accepted:\n%s", ki.name, sm->bad, text);
	snprintf(want, sizeof(want), "%s:%d: %s %s: expected %s (got '%s')", path, line, header,
		 ki.name, ki.want, sm->bad);
	REQUIRE_MSG(strcmp(cfg_error(), want) == 0, "got: %s\nwanted: %s", cfg_error(), want);
}
END_TEST

START_TEST(test_file_samples_cover_every_key)
{
	/* The other way round: no sample for a key that does not exist any more. */
	for (int i = 0; i < N_SAMPLES; i++) {
		int found = 0;
		struct cfg_key_info ki;
		for (int k = 0; cfg_key_info(k, &ki) == 0 && !found; k++)
			found = sample_for(&ki) == &samples[i];
		REQUIRE_MSG(found, "sample %s names no key of the parser", samples[i].key);
	}
}
END_TEST

/* ---- every error ---- */

struct file_error {
	const char *text;
	int line;           /* 0: the error names no line */
	const char *what;
};

static const struct file_error file_errors[] = {
	{ "[gateway]\nfoo = bar\n", 2, "unknown key 'foo' in [gateway]: expected one of control," },
	{ "# top\n[server]\nlisten = x\n", 2, "unknown section [server]: expected [gateway]," },
	{ "[limits]\nmax-m = 100\n", 2, "unknown key 'max-m' in [limits]" },
	{ "[admin]\naddress\n[limits]\nmax-message = 5\n", 2, "expected 'key = value' (got 'address')" },
	{ "max-message = 5\n", 1, "expected a section header such as [gateway] before 'max-message = 5'" },
	{ "[limits\nmax-message = 5\n", 1, "expected a section header '[NAME]' (got '[limits')" },
	{ "[route]\npool = x\n", 1, "[route]: expected a name: [route NAME]" },
	{ "[gateway x]\n", 1, "[gateway x]: expected no name: [gateway]" },
	{ "[route /a]\npool = echo\n[route /a/]\npool = echo\n", 3, "[route /a/]: this section is given twice" },
	{ "[limits]\nmax-message = 5\n\nmax-message = 6\n", 4, "[limits] max-message is given twice (first on line 2)" },
	/* Two [limits] sections: the second's max-message would silently win over the first's. */
	{ "[limits]\nmax-message = 5\n[gateway]\n[limits]\nmax-message = 6\n", 4,
	  "[limits]: this section is given twice (first on line 1)" },
	{ "[route /a]\nauthorize = yes\n", 1, "[route /a]: expected a line 'pool = NAME'" },
	{ "[listen x]\n# nothing\n[limits]\n", 1, "[listen x]: expected a line 'address = ADDR:PORT'" },
	{ "[worker w]\npool = p\n", 1, "[worker w]: expected a line 'command = ...'" },
	{ "[route /a]\npool = echo\nauthorize = yes\n", 1, "[route /a]: the built-in echo pool cannot authorize" },
	{ "[route /a]\npool = p\n[pool q]\n", 3, "[pool q]: no route names pool q" },
	{ "[route /a]\npool = p\n[worker w]\ncommand = true\n", 3, "[worker w]: pool w: expected a worker pool that a route names" },
	{ "[limits]\nmax-message = 100\n[route /a]\npool = p\nmax-message = 200\n", 3,
	  "[route /a]: max-message 200: expected at most [limits] max-message (100)" },
	{ "[limits]\nmax-message = 100000\nmax-outbound = 100013\n", 3, "expected room for one message" },
	{ "[gateway]\nring-size = 65536\n[limits]\nmax-message = 32705\n", 2, "[gateway] ring-size (--ring-size) 65536 cannot hold" },
	{ "[gateway]\ncurve-clients = /k\n", 2, "expected curve-secret-key" },
	{ "[route x]\npool = p\n", 1, "[route x]: expected a path prefix starting with '/'" },
	{ "[worker a b]\ncommand = true\n", 1, "[worker a b]: expected a name of letters" },
	{ "[gateway]\nidle-timeout = 1 2\n", 2, "[gateway] idle-timeout: expected seconds > 0 (got '1 2')" },
	{ "[gateway]\n  idle-timeout = 1\n    close-timeout\n", 3, "expected 'key = value' (got 'close-timeout')" },
	{ "[log]\nlevel = debug ; no: a comment needs a space before it\nformat = json;x\n", 3, "[log] format: expected text or json (got 'json;x')" },
};

START_TEST(test_file_errors)
{
	const struct file_error *fe = &file_errors[_i];
	char want[256];
	int rc = load_text(fe->text);
	REQUIRE_MSG(rc == -EINVAL, "accepted:\n%s", fe->text);
	snprintf(want, sizeof(want), "%s:%d: ", path, fe->line);
	REQUIRE_MSG(strncmp(cfg_error(), want, strlen(want)) == 0 && strstr(cfg_error(), fe->what),
		    "got: %s\nwanted: %s...%s\nfor:\n%s", cfg_error(), want, fe->what, fe->text);
}
END_TEST

START_TEST(test_file_long_line)
{
	char *text = malloc(10000);
	int n = snprintf(text, 10000, "[worker w]\npool = p\ncommand = ");
	memset(text + n, 'x', 5000);
	snprintf(text + n + 5000, 100, "\n");
	ck_assert_int_eq(load_text(text), -EINVAL);
	REQUIRE_MSG(strstr(cfg_error(), ":3: expected a line of at most"), "%s", cfg_error());
	/* A long line within the limit is taken whole. */
	n = snprintf(text, 10000, "[route /w]\npool = w\n[worker w]\ncommand = echo ");
	memset(text + n, 'y', 1000);
	snprintf(text + n + 1000, 100, "\n");
	ck_assert_int_eq(load_text(text), 0);
	ck_assert_uint_eq(strlen(cfg.workers[0].command), 1005);
	free(text);
}
END_TEST

START_TEST(test_file_not_regular)
{
	ck_assert_int_eq(load("--config", "/tmp"), -EINVAL);
	REQUIRE_MSG(strcmp(cfg_error(), "config file /tmp: expected a regular file (it is a directory)") == 0,
		    "%s", cfg_error());
	ck_assert_int_eq(load("--config", "/dev/null"), -EINVAL);
	REQUIRE_MSG(strstr(cfg_error(), "/dev/null: expected a regular file"), "%s", cfg_error());
	ck_assert_int_eq(load("--config", "/nonexistent/wsgw.conf"), -EINVAL);
	REQUIRE_MSG(strstr(cfg_error(), "/nonexistent/wsgw.conf: cannot be read: No such file"), "%s",
		    cfg_error());
	/* A FIFO would block a plain open: refused at once. */
	char fifo[80];
	snprintf(fifo, sizeof(fifo), "%s.fifo", path);
	unlink(fifo);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	ck_assert_int_eq(load("--config", fifo), -EINVAL);
	REQUIRE_MSG(strstr(cfg_error(), "expected a regular file (it is not a regular file)"), "%s", cfg_error());
	unlink(fifo);
}
END_TEST

START_TEST(test_file_unreadable)
{
	write_file(path, "[limits]\nmax-message = 5\n");
	ck_assert_int_eq(chmod(path, 0), 0);
	/* Root reads anything: the load runs as nobody in a child then. */
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (geteuid() == 0 && (setgid(65534) || setuid(65534)))
			_exit(3);
		int rc = load("--config", path);
		_exit(rc == -EINVAL && strstr(cfg_error(), "cannot be read: Permission denied") ? 0 : 1);
	}
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "an unreadable file was not refused as such (0x%x)", st);
}
END_TEST

START_TEST(test_file_sections)
{
	const char *text =
		"\xef\xbb\xbf# a comment\n; another\n\n"
		"[listen main]\naddress = 127.0.0.1:0\n"
		"[listen v6]\naddress = '[::1]:0'\n"
		"[route /chat/]\npool = \"chat\"   # quoted, with a comment\nauthorize = yes\n"
		"protocols = chat.v2|chat.v1\norigins = https://a.example|https://b.example\n"
		"[route /]\npool = echo\n"
		"[pool chat]\nmin-workers = 2\n"
		"[worker chat]\ncommand = wsgw-echo --control $WSGW_CONTROL --pool $WSGW_POOL\ninstances = 2\n"
		"[admin]\naddress = 127.0.0.1:0\ntoken = t0k\n"
		"[log]\nformat = json\n"
		"[limits]\nmax-conns-per-ip = 3\ndrain-rate = 10\n"
		"[gateway]\nforward-header = x-a\nforward-header = x-b x-c\n"
		"[cluster]\n";
	ck_assert_int_eq(load_text(text), 0);
	ck_assert_int_eq(cfg.n_listen, 2);
	ck_assert_str_eq(cfg.listen[0].name, "main");
	ck_assert_str_eq(cfg.listen[1].text, "[::1]:0");
	ck_assert_int_eq(cfg.n_routes, 2);
	ck_assert_str_eq(cfg.routes[0].prefix, "/chat");
	ck_assert_str_eq(cfg.routes[0].pool, "chat");
	ck_assert_int_eq(cfg.routes[0].authorize, 1);
	ck_assert_str_eq(cfg.routes[0].origins, "https://a.example|https://b.example");
	ck_assert_int_eq(cfg.n_pools, 1);
	ck_assert_uint_eq(cfg.pools[0].min_workers, 2);
	ck_assert_ptr_eq(cfg_pool_find(&cfg, "chat"), &cfg.pools[0]);
	ck_assert_ptr_null(cfg_pool_find(&cfg, "echo"));
	ck_assert_int_eq(cfg.n_workers, 1);
	ck_assert_str_eq(cfg.workers[0].pool, "chat");
	ck_assert_uint_eq(cfg.workers[0].instances, 2);
	ck_assert_uint_eq(cfg.workers[0].backoff_ms, 500);
	ck_assert_uint_eq(cfg.workers[0].backoff_max_ms, 30000);
	ck_assert_str_eq(cfg.admin_token, "t0k");
	ck_assert_int_eq(cfg.log_format, CFG_LOG_JSON);
	ck_assert_uint_eq(cfg.max_conns_per_ip, 3);
	ck_assert_int_eq(cfg.n_forward, 3);
	ck_assert_str_eq(cfg.forward[2], "x-c");
	/* The JSON form of the settings is one object. */
	int n = cfg_format(&cfg, 1, shown, sizeof(shown));
	ck_assert_int_gt(n, 0);
	ck_assert(shown[0] == '{' && shown[n - 2] == '}');
	ck_assert_ptr_nonnull(strstr(shown, "{\"section\":\"route\",\"name\":\"/chat\",\"keys\":{\"pool\":\"chat\""));
	ck_assert_ptr_null(strstr(shown, "t0k"));
}
END_TEST

START_TEST(test_cli_overrides_file)
{
	write_file(path, "[listen a]\naddress = 127.0.0.1:1000\n[listen b]\naddress = 127.0.0.1:1001\n"
			 "[route /a]\npool = pa\nmax-message = 500\n[route /b]\npool = pb\n"
			 "[limits]\nmax-message = 2000\n[gateway]\nidle-timeout = 7\nforward-header = x-file\n");
	ck_assert_int_eq(load("--config", path), 0);
	ck_assert_int_eq(cfg.n_listen, 2);
	ck_assert_uint_eq(cfg.routes[0].lim.max_message, 500);
	ck_assert_uint_eq(cfg.routes[1].lim.max_message, 2000);
	ck_assert_uint_eq(cfg.routes[1].lim.idle_ms, 7000);
	ck_assert_uint_eq(cfg.routes[1].lim.ping_ms, 7000);
	/* Options win: a scalar replaces, --listen replaces the file's listeners, --route
	 * replaces the route of the same prefix and adds others, --forward-header the list. */
	ck_assert_int_eq(load("--config", path, "--max-message", "3000", "--listen", "127.0.0.1:2000",
			      "--route", "/a=pz", "--route", "/c=pc", "--forward-header", "x-cli"), 0);
	ck_assert_uint_eq(cfg.max_message, 3000);
	ck_assert_uint_eq(cfg.idle_ms, 7000);
	ck_assert_int_eq(cfg.n_listen, 1);
	ck_assert_str_eq(cfg.listen[0].text, "127.0.0.1:2000");
	ck_assert_int_eq(cfg.n_routes, 3);
	ck_assert_str_eq(cfg.routes[0].pool, "pz");
	ck_assert_uint_eq(cfg.routes[0].lim.max_message, 3000);
	ck_assert_str_eq(cfg.routes[2].prefix, "/c");
	ck_assert_int_eq(cfg.n_forward, 1);
	ck_assert_str_eq(cfg.forward[0], "x-cli");
	/* The order of the options does not matter: the file comes first. */
	ck_assert_int_eq(load("--max-message", "3000", "--config", path), 0);
	ck_assert_uint_eq(cfg.max_message, 3000);
	/* --check-config validates and says so, starting nothing. */
	ck_assert_int_eq(load("--check-config", path), CFG_EXIT);
	ck_assert_int_eq(cfg_exit_code(), 0);
	ck_assert_int_eq(load("--check-config", path, "--max-message", "100"), CFG_EXIT);
	ck_assert_int_eq(cfg_exit_code(), 1);
	REQUIRE_MSG(strstr(cfg_error(), "max-message"), "%s", cfg_error());
	/* -h is --help. */
	ck_assert_int_eq(load("-h"), CFG_EXIT);
	ck_assert_int_eq(cfg_exit_code(), 0);
	ck_assert_int_eq(load("-x"), -EINVAL);
	ck_assert_str_eq(cfg_error(), "-x: unknown option (see wsgw --help)");
}
END_TEST

START_TEST(test_route_options_cli_and_file)
{
	/* Every route key has the same meaning as --route ...,KEY=VALUE. */
	ck_assert_int_eq(load("--route", "/x=p,authorize,protocols=a|b!,origins=https://o.example,deflate=off,"
			      "slow=drop-oldest,max-message=1000,max-outbound=4096,outbound-policy=drop,"
			      "idle-timeout=5,ping-timeout=2"), 0);
	struct cfg_route cli = cfg.routes[0];
	write_file(path, "[route /x]\npool = p\nauthorize = yes\nprotocols = a|b!\norigins = https://o.example\n"
			 "deflate = off\nslow = drop-oldest\nmax-message = 1000\nmax-outbound = 4096\n"
			 "outbound-policy = drop\nidle-timeout = 5\nping-timeout = 2\n");
	ck_assert_int_eq(load("--config", path), 0);
	ck_assert_int_eq(memcmp(&cli, &cfg.routes[0], sizeof(cli)), 0);
	ck_assert_int_eq(cli.authorize, 1);
	ck_assert_int_eq(cli.need_protocol, 1);
	ck_assert_str_eq(cli.protocols, "a|b");
	ck_assert_int_eq(cli.deflate, CFG_DEFLATE_OFF);
	ck_assert_int_eq(cli.slow, CFG_SLOW_DROP_OLDEST);
	ck_assert_uint_eq(cli.lim.max_message, 1000);
	ck_assert_uint_eq(cli.lim.max_outbound, 4096);
	ck_assert_int_eq(cli.lim.outbound_drop, 1);
	ck_assert_uint_eq(cli.lim.idle_ms, 5000);
	ck_assert_uint_eq(cli.lim.ping_ms, 2000);
	ck_assert_int_eq(load("--route", "/x=p,max-message=abc"), -EINVAL);
	ck_assert_str_eq(cfg_error(), "--route /x: max-message: expected 1..[limits] max-message (got 'abc')");
	ck_assert_int_eq(load("--route", "/x=p,colour=red"), -EINVAL);
	REQUIRE_MSG(strstr(cfg_error(), "unknown option 'colour'"), "%s", cfg_error());
}
END_TEST

/* Reload: the file is read again; a bad one is refused with its reason. */
START_TEST(test_config_file_and_reload)
{
	write_file(path, "[limits]\nmax-message = 2000\n[route /a]\npool = pa\n[route /b]\npool = pb\n"
			 "[gateway]\nidle-timeout\t= 7\r\n");
	ck_assert_int_eq(load("--config", path, "--max-message", "3000"), 0);
	ck_assert_uint_eq(cfg.max_message, 3000);
	ck_assert_uint_eq(cfg.idle_ms, 7000);
	ck_assert_int_eq(cfg.n_routes, 2);
	ck_assert_str_eq(cfg.config_file, path);

	write_file(path, "[gateway]\nidle-timeout = 9\n[route /c]\npool = pc\n");
	static struct gw_config fresh;
	ck_assert_int_eq(cfg_reload(&fresh), 0);
	ck_assert_uint_eq(fresh.idle_ms, 9000);
	ck_assert_uint_eq(fresh.max_message, 3000);
	ck_assert_int_eq(fresh.n_routes, 1);
	ck_assert_str_eq(fresh.routes[0].prefix, "/c");

	write_file(path, "[gateway]\n\nidle-timeout = never\n");
	ck_assert_int_eq(cfg_reload(&fresh), -EINVAL);
	char want[160];
	snprintf(want, sizeof(want), "%s:3: [gateway] idle-timeout: expected seconds > 0 (got 'never')", path);
	ck_assert_str_eq(cfg_error(), want);
}
END_TEST

/*
 * BUG (gateway/config.c, config_path): getopt_long takes any unambiguous abbreviation of a
 * long option, so "--conf FILE" parsed as --config, but the file was never read. It must be
 * read, or the option refused.
 */
START_TEST(test_config_file_abbreviated)
{
	char eq[96];
	write_file(path, "[limits]\nmax-message = 2000\n");
	ck_assert_int_eq(load("--config", path), 0);
	ck_assert_uint_eq(cfg.max_message, 2000);
	snprintf(eq, sizeof(eq), "--confi=%s", path);
	ck_assert_int_eq(load("--conf", path), -EINVAL);
	ck_assert_int_eq(load(eq), -EINVAL);
	REQUIRE_MSG(strstr(cfg_error(), "did you mean --config"), "%s", cfg_error());
}
END_TEST

/* ---- the reference and the packaged file ---- */

static char *slurp_path(const char *p)
{
	FILE *f = fopen(p, "r");
	ck_assert_msg(f != NULL, "%s: run the test from the source tree", p);
	char *buf = malloc(1 << 20);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

/*
 * docs/OPERATIONS.md's reference is a table with a row per key:
 *	| `[section]` | `key` | `--option` or – | value | meaning |
 * Every key of the parser has its row, and every row names a key of the parser, with the
 * same option: the reference cannot drift from the code.
 */
START_TEST(test_reference_matches_parser)
{
	char *doc = slurp_path("docs/OPERATIONS.md");
	struct cfg_key_info ki;
	int rows = 0;
	for (char *l = strstr(doc, "\n| `["); l; l = strstr(l + 1, "\n| `[")) {
		char sect[32], key[64], opt[64];
		if (sscanf(l, "\n| `[%31[^] ]%*[^`]` | `%63[^`]` | %63s", sect, key, opt) != 3)
			continue;
		rows++;
		int found = 0;
		for (int i = 0; cfg_key_info(i, &ki) == 0 && !found; i++) {
			if (strcmp(ki.section, sect) || strcmp(ki.name, key))
				continue;
			found = 1;
			char want[80];
			snprintf(want, sizeof(want), ki.option ? "`--%s`" : "–", ki.option);
			REQUIRE_MSG(strcmp(opt, want) == 0, "docs/OPERATIONS.md: [%s] %s has option %s, the parser %s",
				    sect, key, opt, want);
		}
		REQUIRE_MSG(found, "docs/OPERATIONS.md documents [%s] %s, which the parser does not know", sect, key);
	}
	for (int i = 0; cfg_key_info(i, &ki) == 0; i++) {
		char want[128];
		snprintf(want, sizeof(want), "\n| `[%s", ki.section);
		int found = 0;
		for (char *l = strstr(doc, want); l && !found; l = strstr(l + 1, want)) {
			char key[80];
			snprintf(key, sizeof(key), "` | `%s` |", ki.name);
			char *eol = strchr(l + 1, '\n');
			char *at = strstr(l, key);
			found = at && eol && at < eol;
		}
		REQUIRE_MSG(found, "docs/OPERATIONS.md: no reference row for [%s] %s", ki.section, ki.name);
	}
	ck_assert_int_ge(rows, key_count());
	free(doc);
}
END_TEST

/* packaging/wsgw.conf is valid and names every key of its sections, commented out where
 * the default stands. */
START_TEST(test_packaged_config)
{
	char *conf = slurp_path("packaging/wsgw.conf");
	/* Its group and runtime directory are the package's: not this machine's business. */
	write_file(path, conf);
	int rc = load("--config", path, "--group", "0");
	REQUIRE_MSG(rc == 0 || strstr(cfg_error(), "group"), "packaging/wsgw.conf: %s", cfg_error());
	struct cfg_key_info ki;
	for (int i = 0; cfg_key_info(i, &ki) == 0; i++) {
		char a[96], b[96];
		snprintf(a, sizeof(a), "\n%s = ", ki.name);
		snprintf(b, sizeof(b), "\n#%s = ", ki.name);
		REQUIRE_MSG(strstr(conf, a) || strstr(conf, b), "packaging/wsgw.conf does not mention [%s] %s",
			    ki.section, ki.name);
	}
	free(conf);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cfg_file");
	TCase *tc = tcase_create("file");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_file_every_key, 0, key_count());
	tcase_add_test(tc, test_file_samples_cover_every_key);
	tcase_add_loop_test(tc, test_file_errors, 0, (int)(sizeof(file_errors) / sizeof(file_errors[0])));
	tcase_add_test(tc, test_file_long_line);
	tcase_add_test(tc, test_file_not_regular);
	tcase_add_test(tc, test_file_unreadable);
	tcase_add_test(tc, test_file_sections);
	tcase_add_test(tc, test_cli_overrides_file);
	tcase_add_test(tc, test_route_options_cli_and_file);
	tcase_add_test(tc, test_config_file_and_reload);
	tcase_add_test(tc, test_config_file_abbreviated);
	tcase_add_test(tc, test_reference_matches_parser);
	tcase_add_test(tc, test_packaged_config);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
