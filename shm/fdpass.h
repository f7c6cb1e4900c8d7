/*
 * How a shm worker gets its segment, the gateway's doorbell page and the loop's eventfd: as
 * file descriptors over a Unix stream socket (SCM_RIGHTS), never by a name another process
 * could open.
 * WELCOME gives the worker the socket's path and a one-time token; the worker connects,
 * writes the token and a newline, and receives one status byte with the descriptors.
 * Both sides use this; neither blocks longer than its timeout.
 */
#ifndef WSGW_SHM_FDPASS_H
#define WSGW_SHM_FDPASS_H

#include <stddef.h>

/* A token is this many hex characters. */
#define SHM_FDPASS_TOKEN_LEN 32

/* Fills tok with a fresh random token and a NUL (SHM_FDPASS_TOKEN_LEN + 1 bytes). Returns 0
 * or -errno of getrandom. */
int shm_fdpass_token(char *tok);

/* Gateway: sends status (0: here they are; else a refusal, no descriptors) and n fds on the
 * connected socket sock. Returns 0 or -errno. */
int shm_fdpass_send(int sock, unsigned char status, const int *fds, int n);

/* Worker: connects to the socket at path, presents token and receives between min and max
 * descriptors into fds (close-on-exec; the caller closes them; any past max are closed):
 * a gateway older than the worker may send fewer than it knows of. Returns how many came,
 * or -EACCES (the gateway refused the token), -EPROTO (a malformed answer, fewer than
 * min), -ETIMEDOUT, or -errno of the socket calls. */
int shm_fdpass_fetch(const char *path, const char *token, int timeout_ms, int *fds, int min, int max);

#endif
