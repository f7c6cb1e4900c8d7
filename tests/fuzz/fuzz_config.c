/*
 * gateway/config.c: the --config file. The input is the file's text, read through
 * cfg_load with --config naming a memfd, so the target keeps working when the parser
 * behind cfg_load changes (a later issue moves it to libinih).
 *
 * An accepted file must give a configuration the rest of the gateway can rely on (the
 * invariants parse_args establishes), and a reload of the same file (SIGHUP) must give
 * the same one.
 */
#include "gateway/config.h"
#include "tests/fuzz/fuzz.h"

#include <netinet/in.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int fd = -1;
static char path[64];
static char *argv_[] = { "wsgw", "--config", path, NULL };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	FILE *null = fopen("/dev/null", "w");

	(void)argc;
	(void)argv;
	/* The parser explains every refusal on stderr and --help prints usage on stdout.
	   Swapping the streams, not dup2 on fds 1 and 2, silences them while libFuzzer's
	   progress lines (its own FILE, taken at startup) and ASan's reports (written to
	   fd 2) still show. */
	FUZZ_CHECK(null);
	stderr = null;
	stdout = null;
	fd = memfd_create("fuzz-config", MFD_CLOEXEC);
	FUZZ_CHECK(fd >= 0);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return 0;
}

static int bounded(const char *s, size_t cap)
{
	return memchr(s, 0, cap) != NULL;
}

static void check_config(const struct gw_config *c)
{
	FUZZ_CHECK(c->n_listen >= 1 && c->n_listen <= CFG_MAX_LISTEN);
	for (int i = 0; i < c->n_listen; i++) {
		FUZZ_CHECK(c->listen[i].len == sizeof(struct sockaddr_in) ||
			   c->listen[i].len == sizeof(struct sockaddr_in6));
		FUZZ_CHECK(bounded(c->listen[i].text, sizeof(c->listen[i].text)));
	}
	FUZZ_CHECK(c->n_routes >= 1 && c->n_routes <= CFG_MAX_ROUTES);
	for (int i = 0; i < c->n_routes; i++) {
		const struct cfg_route *r = &c->routes[i];

		FUZZ_CHECK(bounded(r->prefix, sizeof(r->prefix)) && bounded(r->pool, sizeof(r->pool)));
		FUZZ_CHECK(r->prefix[0] == '/' && r->pool[0]);
		size_t pl = strlen(r->prefix);
		FUZZ_CHECK(pl == 1 || r->prefix[pl - 1] != '/');
		/* A route's own prefix is matched by it or by a duplicate of it. */
		int m = cfg_route_match(c, r->prefix, pl);
		FUZZ_CHECK(m >= 0 && m < c->n_routes && !strcmp(c->routes[m].prefix, r->prefix));
	}
	FUZZ_CHECK(c->max_message >= 1 && c->max_message <= (uint64_t)1 << 31);
	FUZZ_CHECK(c->max_header >= 256 && c->max_header <= 1 << 20);
	FUZZ_CHECK(c->max_outbound >= c->max_message + 14);
	FUZZ_CHECK(c->handshake_ms && c->idle_ms && c->close_ms && c->heartbeat_ms &&
		   c->authorize_ms && c->orphan_ms);
	/* The rings must take the largest record: a record is at most half a ring. */
	uint64_t open_max = cfg_open_max(c);
	uint64_t largest = c->max_message > open_max ? c->max_message : open_max;
	FUZZ_CHECK(c->ring_bytes && !(c->ring_bytes & (c->ring_bytes - 1)));
	FUZZ_CHECK(c->ring_bytes / 2 >= largest + 64);
	FUZZ_CHECK(c->socket_mode == 0600 || c->socket_mode == 0660);
	/* TLS: a ,tls listener has a certificate and a key, and they come only with one. */
	int tls = 0;
	for (int i = 0; i < c->n_listen; i++)
		tls |= c->listen[i].tls;
	FUZZ_CHECK(tls ? c->tls_cert[0] && c->tls_key[0] : !c->tls_cert[0] && !c->tls_key[0]);
	FUZZ_CHECK(!c->admin.tls);
	FUZZ_CHECK(c->n_forward >= 1 && c->n_forward <= CFG_MAX_FORWARD);
	for (int i = 0; i < c->n_forward; i++) {
		FUZZ_CHECK(bounded(c->forward[i], CFG_NAME_MAX) && c->forward[i][0]);
		for (const char *p = c->forward[i]; *p; p++)
			FUZZ_CHECK(!(*p >= 'A' && *p <= 'Z'));
	}
	FUZZ_CHECK(bounded(c->control, sizeof(c->control)) && strstr(c->control, "://"));
	FUZZ_CHECK(bounded(c->runtime_dir, sizeof(c->runtime_dir)) && c->runtime_dir[0] == '/');
	FUZZ_CHECK(bounded(c->curve_secret, sizeof(c->curve_secret)) &&
		   bounded(c->curve_clients, sizeof(c->curve_clients)));
	FUZZ_CHECK(!c->curve_clients[0] || c->curve_secret[0]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct gw_config cfg, again;
	int rc;

	FUZZ_CHECK(ftruncate(fd, 0) == 0);
	FUZZ_CHECK(pwrite(fd, data, size, 0) == (ssize_t)size);
	rc = cfg_load(&cfg, 3, argv_);
	FUZZ_CHECK(rc == 0 || rc == 1 || rc == -22 /* -EINVAL */);
	if (rc)
		return 0;
	check_config(&cfg);
	/* parse_args zeroes the struct first, so two equal parses are equal bytes. */
	FUZZ_CHECK(cfg_reload(&again) == 0);
	FUZZ_CHECK(!memcmp(&cfg, &again, sizeof(cfg)));
	return 0;
}
