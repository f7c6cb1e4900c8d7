/* The messages wsgw-bench sends, and so the echoes it expects: message seq of connection
 * idx starts with 8 hex digits naming (idx, seq) and continues with a window of one
 * pattern chosen by both, so a lost, reordered or misdelivered echo cannot compare equal.
 * The pattern is random letters (as incompressible as text gets), or JSON rows for
 * --json-payload: what permessage-deflate meets in practice. */
#ifndef LG_PAYLOAD_H
#define LG_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

/* Makes the pattern (random letters, or with json rows of JSON objects) for messages of
 * up to max_size bytes. Call once, before the client threads start; aborts on OOM. */
void lg_payload_init(int json, size_t max_size);

/* The smallest message: 8 bytes (the tag), 28 for JSON ({"tag":"…","rows":[]}). */
size_t lg_payload_min(int json);

/* Writes message seq of connection idx, n >= lg_payload_min() bytes, to p. With JSON it
 * is one valid JSON object: {"tag":"TTTTTTTT","rows":[ROW,ROW,…]   } padded with spaces. */
void lg_payload_make(uint8_t *p, size_t n, uint32_t idx, uint64_t seq);

#endif
