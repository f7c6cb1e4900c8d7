/* Incremental UTF-8 validation (RFC 3629) for text messages and close reasons. */
#ifndef WSGW_UTF8_H
#define WSGW_UTF8_H

#include <stddef.h>
#include <stdint.h>

/*
 * The validator is a DFA whose state fits in a uint32_t; a fresh validator is
 * UTF8_ACCEPT. States are bit offsets into the DFA's table rows, so
 * UTF8_REJECT is 6, not 1: compare against the names, never against literals.
 */
#define UTF8_ACCEPT 0u
#define UTF8_REJECT 6u	/* sticky: once rejected, stays rejected */

/*
 * Advances the validator from `state` over p[0..n) and returns the new state:
 *  - UTF8_ACCEPT when the input so far ends on a character boundary;
 *  - UTF8_REJECT as soon as the input cannot be the prefix of valid UTF-8
 *    (overlong form, surrogate, code point > U+10FFFF, bad or missing
 *    continuation byte), at the very byte where that becomes certain, even when
 *    a character is split across calls: E0 80, ED A0, F0 8F and F4 90 are
 *    rejected at their second byte; C0, C1 and F5..FF at their first byte.
 *    Once rejected, the rest of p is not read;
 *  - any other value: the input ends inside a character (more bytes needed).
 * Reads exactly p[0..n) at most; n == 0 returns state unchanged. Pure function,
 * safe from any thread.
 */
uint32_t utf8_validate(uint32_t state, const uint8_t *p, size_t n);

#endif
