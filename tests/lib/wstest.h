/*
 * wstest: the harness every gateway test shares.
 *
 * It starts a real build/wsgw on ports the kernel picked, and talks to it
 * through a blocking raw-socket WebSocket client that can send anything,
 * including what a well-behaved client never would (bad handshakes, RSV bits,
 * unmasked frames, frames split across TCP writes). Every wait is bounded by
 * poll() with a timeout; nothing here can hang a test.
 *
 * Two layers:
 * - wt_* functions return 0 / a positive count, or a negative errno:
 *   -ETIMEDOUT (nothing within the bound), -EPIPE (peer closed: TCP EOF),
 *   -ECONNRESET (peer reset), -EPROTO (the peer sent something RFC 6455
 *   forbids, e.g. a masked server frame). On failure c->err says what happened.
 * - WT_EXPECT_* macros assert through Check and report the test's file:line
 *   with a description of what was expected and what arrived instead.
 *
 * Cleanup when a test fails: a WT_EXPECT_* failure prints the log tail of
 * every gateway this process started, kills them and removes their files
 * before failing (Check ends a failed forked test with _exit(), so atexit
 * handlers do not run). Gateways get PR_SET_PDEATHSIG(SIGKILL), so a test
 * killed by Check's timeout or a plain ck_assert does not leak them; their
 * log dirs (/tmp/wstest.<test pid>.XXXXXX) are removed by the next
 * wt_gw_start once that pid is gone.
 */
#ifndef WSTEST_H
#define WSTEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum {
	WT_CONT = 0x0, WT_TEXT = 0x1, WT_BINARY = 0x2,
	WT_CLOSE = 0x8, WT_PING = 0x9, WT_PONG = 0xA,
};

/* Close "code" meaning "close frame with an empty payload". */
#define WT_CLOSE_EMPTY 1005

/* Default bound for each wait, in ms; WT_TIMEOUT_MS in the environment overrides. */
int wt_timeout_ms(void);
/* CLOCK_MONOTONIC in milliseconds, and a sleep that resumes after signals. */
int64_t wt_now_ms(void);
void wt_sleep_ms(int ms);
/* Forks and execs argv[0] with stdin from /dev/null and stdout, stderr to logfd, killed if
 * the test process dies, holding none of the test's other fds. Returns the pid or -errno. */
pid_t wt_spawn(const char *const *argv, int logfd);
/* Waits up to timeout_ms for child pid to exit: 0 and *status, -ETIMEDOUT, or -errno. */
int wt_waitpid(pid_t pid, int *status, int timeout_ms);

/* ---- the gateway process ---------------------------------------------- */

#define WT_MAX_LISTEN 4

struct wt_gw {
	pid_t pid;              /* 0 once reaped */
	int port;               /* the first --listen's port */
	int ports[WT_MAX_LISTEN];
	int nlisten;
	int status;             /* wait status once reaped */
	char dir[64];           /* temp dir holding the log */
	char log_path[96];
	pid_t worker;           /* worker mode: the worker serving pool "conf", 0: none */
};

/* Worker mode: with $WT_GW_WORKER naming a worker program (build/wsgw-echo), a gateway
 * started without --route serves "/" through pool "conf" and one such worker, started
 * and attached before wt_gw_start returns, stopped after the gateway; one started with
 * routes of its own that name pool "conf" gets the worker too. */
int wt_worker_mode(void);

/*
 * Starts $WSGW_BUILD/wsgw (./build/wsgw without WSGW_BUILD) with the
 * NULL-terminated extra arguments, stderr to gw->log_path, and waits (≤ 5 s)
 * until it has logged "listening on HOST:PORT" for every --listen. Without a
 * --listen among the arguments, "--listen 127.0.0.1:0" is added first.
 * Returns 0, or a negative errno with the reason and the log tail on stderr
 * (the process is then killed and reaped).
 */
int wt_gw_start(struct wt_gw *gw, ...) __attribute__((sentinel));
int wt_gw_startv(struct wt_gw *gw, const char *const *args);

/*
 * Sends SIGTERM (unless already reaped), waits up to timeout_ms for the exit,
 * SIGKILLs after that. Returns the wait status, or -ETIMEDOUT when it had to
 * be killed. Removes the log and the temp dir.
 */
int wt_gw_stop(struct wt_gw *gw, int timeout_ms);
/* Reaps without signalling: 0 once exited (status in gw->status), -ETIMEDOUT. */
int wt_gw_wait(struct wt_gw *gw, int timeout_ms);
/* Prints the last max_lines lines of the gateway's log to stderr. */
void wt_gw_dump_log(const struct wt_gw *gw, int max_lines);
/* 1 when the log contains needle. */
int wt_gw_log_contains(const struct wt_gw *gw, const char *needle);

/* ---- the client connection -------------------------------------------- */

struct wt_conn {
	int fd;                 /* -1 when closed */
	int timeout_ms;         /* bound for each wait; wt_timeout_ms() by default */
	uint8_t *in;            /* received; in[in_off..in_len) not consumed yet */
	size_t in_off, in_len, in_cap;
	int eof;                /* 0, or -EPIPE / -ECONNRESET once the peer closed */
	int body_to_eof;        /* last HTTP response had a close-delimited body */
	uint8_t *msg;           /* message being reassembled by wt_read_message */
	size_t msg_len, msg_cap;
	int msg_opcode;         /* 0: no message underway */
	char key[32];           /* Sec-WebSocket-Key of the last request built */
	void *tls;              /* TLS state (tests/lib/wttls.h) on a TLS port; NULL otherwise */
	char err[256];
};

/* The SO_RCVBUF of the sockets wt_connect makes from now on (0: the kernel's default): a
 * small one keeps what the client does not read in the server. */
void wt_set_rcvbuf(int bytes);
/* Connects to host ("127.0.0.1", "::1") and port, TCP_NODELAY, non-blocking; with TLS
 * when port is the ",tls" listener of a gateway wt_gw_start started (see wttls.h). */
int wt_connect(struct wt_conn *c, const char *host, int port);
/* The same without TLS on any port: raw bytes to a TLS listener. */
int wt_connect_tcp(struct wt_conn *c, const char *host, int port);
/* Closes the socket (abortively if linger_rst) and frees the buffers. Idempotent. */
void wt_close(struct wt_conn *c);
void wt_close_rst(struct wt_conn *c);
/* Closes every connection this process opened and has not closed yet. */
void wt_close_all(void);

/* Writes all of buf (bounded by c->timeout_ms). 0, -ETIMEDOUT, -EPIPE, -ECONNRESET. */
int wt_send_raw(struct wt_conn *c, const void *buf, size_t len);
/* The same, chunk bytes per write with pause_ms between them (TCP_NODELAY is set). */
int wt_send_chunked(struct wt_conn *c, const void *buf, size_t len,
		    size_t chunk, int pause_ms);

/* ---- HTTP handshake --------------------------------------------------- */

/* A fresh random 16-byte key, base64 (24 chars + NUL). */
void wt_key_new(char key[32]);
/* Sec-WebSocket-Accept for key (28 chars + NUL). */
void wt_accept_for(const char *key, char out[32]);

/*
 * Formats a valid RFC 6455 upgrade request for path with a new key (kept in
 * c->key), extra (raw header lines, each ending in \r\n, or NULL) inserted
 * before the blank line. Returns the length, or -ENOSPC.
 */
int wt_request_build(struct wt_conn *c, char *out, size_t cap,
		     const char *path, const char *extra);

struct wt_http {
	int status;
	char head[16384];       /* the status line and headers, NUL-terminated */
	size_t head_len;
};

/*
 * Reads an HTTP response head (≤ 16 KiB) and, for statuses other than 101, a
 * body of Content-Length bytes. Bytes after it stay buffered in c (the
 * first frames). Returns the status code (> 0) or a negative errno.
 */
int wt_http_read(struct wt_conn *c, struct wt_http *r);
/* The value of header name (case-insensitive), NUL-terminated copy in out; NULL if absent. */
const char *wt_http_header(const struct wt_http *r, const char *name,
			   char *out, size_t cap);
/* Checks a 101 response: Upgrade, Connection and Sec-WebSocket-Accept for c->key. 0 or -EPROTO. */
int wt_http_check_upgrade(struct wt_conn *c, const struct wt_http *r);

/* Connects and completes the handshake for path. 0 or a negative errno / -EPROTO. */
int wt_open(struct wt_conn *c, const char *host, int port, const char *path);

/* ---- frames ----------------------------------------------------------- */

struct wt_frame_spec {
	int opcode;             /* 0..15, any value */
	int fin;                /* 1: FIN set */
	int rsv;                /* 0..7: RSV1 = 4, RSV2 = 2, RSV3 = 1 */
	int unmasked;           /* 1: send without a mask (a violation) */
	int len_bytes;          /* 0: minimal; 1, 2 or 8 to force an encoding */
	uint64_t len_override;  /* nonzero: announce this length instead of len */
	const void *payload;
	size_t len;
};

/* Encodes spec into a malloc'ed buffer (caller frees); *out_len set. */
uint8_t *wt_frame_encode(const struct wt_frame_spec *s, size_t *out_len);
int wt_send_spec(struct wt_conn *c, const struct wt_frame_spec *s);
/* A masked frame with minimal length encoding and no RSV bits. */
int wt_send_frame(struct wt_conn *c, int opcode, int fin, const void *p, size_t len);
/* A close frame: code < 0 sends an empty payload; reason may be NULL. */
int wt_send_close(struct wt_conn *c, int code, const void *reason, size_t reason_len);

struct wt_frame {
	int fin, rsv, opcode;
	uint8_t *payload;       /* malloc'ed (always, also for len 0); wt_frame_free */
	size_t len;
};
void wt_frame_free(struct wt_frame *f);

/*
 * Reads one frame within timeout_ms (< 0: c->timeout_ms). Server frames must
 * be unmasked and at most 256 MiB: otherwise -EPROTO.
 */
int wt_read_frame(struct wt_conn *c, struct wt_frame *f, int timeout_ms);
/*
 * Reads the next message: a whole data message (fragments joined; opcode
 * TEXT/BINARY), or a control frame, which may arrive between fragments (the
 * partial message is kept in c for the next call). -EPROTO on a
 * continuation without start or a new data frame inside a message.
 */
int wt_read_message(struct wt_conn *c, struct wt_frame *m, int timeout_ms);
/* Close code of a close frame: WT_CLOSE_EMPTY for an empty payload, -1 for a 1-byte payload. */
int wt_close_code(const struct wt_frame *f);
/* 0 when TCP EOF or reset arrives within timeout_ms, -EPROTO when bytes arrive first, -ETIMEDOUT. */
int wt_wait_eof(struct wt_conn *c, int timeout_ms);

/* 1 when s[0..n) is valid UTF-8 (RFC 3629: no overlongs, surrogates, > U+10FFFF). */
int wt_utf8_valid(const uint8_t *s, size_t n);
/* Fills buf with a deterministic pattern for seed (valid ASCII if text). */
void wt_fill(void *buf, size_t len, unsigned seed, int text);

/* ---- assertions (Check) ----------------------------------------------- */

void wt__expect_http(const char *file, int line, struct wt_conn *c,
		     struct wt_http *r, int status);
void wt__expect_open(const char *file, int line, struct wt_conn *c,
		     const char *host, int port, const char *path);
void wt__expect_message(const char *file, int line, struct wt_conn *c, int opcode,
			const void *p, size_t len, int timeout_ms);
void wt__expect_close(const char *file, int line, struct wt_conn *c,
		      const int *codes, int ncodes, int timeout_ms);
void wt__expect_eof(const char *file, int line, struct wt_conn *c, int timeout_ms);
void wt__expect_ok(const char *file, int line, struct wt_conn *c, int rc, const char *what);
void wt__gw_start(const char *file, int line, struct wt_gw *gw, const char *const *args);
void wt__gw_stop(const char *file, int line, struct wt_gw *gw);

/* Asserts an HTTP response with status arrives (r may be NULL). */
#define WT_EXPECT_HTTP(c, r, status) wt__expect_http(__FILE__, __LINE__, (c), (r), (status))
/* Asserts the connection and a valid 101 handshake. */
#define WT_EXPECT_OPEN(c, host, port, path) \
	wt__expect_open(__FILE__, __LINE__, (c), (host), (port), (path))
/* Asserts the next message is exactly opcode + bytes (default timeout). */
#define WT_EXPECT_MESSAGE(c, opcode, p, len) \
	wt__expect_message(__FILE__, __LINE__, (c), (opcode), (p), (len), -1)
#define WT_EXPECT_MESSAGE_T(c, opcode, p, len, ms) \
	wt__expect_message(__FILE__, __LINE__, (c), (opcode), (p), (len), (ms))
/* Asserts the next frame is a close with one of the codes (WT_CLOSE_EMPTY allowed) and a UTF-8 reason. */
#define WT_EXPECT_CLOSE(c, ...) do { \
		const int wt_codes_[] = { __VA_ARGS__ }; \
		wt__expect_close(__FILE__, __LINE__, (c), wt_codes_, \
				 (int)(sizeof(wt_codes_) / sizeof(wt_codes_[0])), -1); \
	} while (0)
/* Asserts TCP EOF (or reset) within the default timeout, nothing else before it. */
#define WT_EXPECT_EOF(c) wt__expect_eof(__FILE__, __LINE__, (c), -1)
/* The usual end of a failed connection: a close with one of the codes, then EOF. */
#define WT_EXPECT_CLOSE_EOF(c, ...) do { \
		WT_EXPECT_CLOSE((c), __VA_ARGS__); \
		WT_EXPECT_EOF(c); \
	} while (0)
/* Asserts a wt_* call returned >= 0, showing c->err otherwise. */
#define WT_OK(c, call) wt__expect_ok(__FILE__, __LINE__, (c), (call), #call)
/* Starts a gateway with the extra args or fails the test. */
#define WT_GW_START(gw, ...) do { \
		const char *const wt_args_[] = { __VA_ARGS__ }; \
		wt__gw_start(__FILE__, __LINE__, (gw), wt_args_); \
	} while (0)
/* Closes this process's connections, stops the gateway, asserts it exited 0. */
#define WT_GW_STOP(gw) wt__gw_stop(__FILE__, __LINE__, (gw))

/* ---- the admin endpoint ------------------------------------------------ */

/* The port of the gateway's --admin endpoint, from its log; 0 when there is none. */
int wt_gw_admin_port(const struct wt_gw *gw);
/* GET path from 127.0.0.1:port: the whole response (headers and body) in out, asserted. */
void wt_http_get(int port, const char *path, char *out, size_t cap);
/* The value of series ("wsgw_x_total" or "wsgw_x{a=\"b\"}") in a /metrics text; -1 if absent. */
double wt_metric(const char *text, const char *series);

#endif
