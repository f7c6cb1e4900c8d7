/* Private to the config parser: the kinds of value its table of keys names (cfg_values.c). */
#ifndef WSGW_GATEWAY_CFG_VALUES_H
#define WSGW_GATEWAY_CFG_VALUES_H

#include "gateway/cfg_int.h"

/* The field a key names in the object being set (a gw_config, route, pool or worker). */
#define FIELD(obj, k, type) ((type *)((char *)(obj) + (k)->off))
#define CFIELD(obj, k, type) ((const type *)((const char *)(obj) + (k)->off))

/* A decimal number in [min, max]; 0 or -EINVAL. */
int cfgv_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* Seconds, fractions allowed ("2.5"), as milliseconds in *out, never 0; 0 or -EINVAL. */
int cfgv_parse_secs(const char *v, unsigned *out);

int cfgv_set_u64(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v);
void cfgv_get_u64(const void *o, const struct cfg_key *k, char *out, size_t cap);
int cfgv_set_size(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v);
void cfgv_get_size(const void *o, const struct cfg_key *k, char *out, size_t cap);
int cfgv_set_uint(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v);
void cfgv_get_uint(const void *o, const struct cfg_key *k, char *out, size_t cap);
int cfgv_set_secs(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v);
int cfgv_set_secs_range(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v);
void cfgv_get_secs(const void *o, const struct cfg_key *k, char *out, size_t cap);
int cfgv_set_str(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v);
int cfgv_set_str0(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v);
void cfgv_get_str(const void *o, const struct cfg_key *k, char *out, size_t cap);
void cfgv_get_secret(const void *o, const struct cfg_key *k, char *out, size_t cap);
int cfgv_set_name(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v);
int cfgv_set_abspath(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v);
int cfgv_set_endpoint(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v);
int cfgv_set_enum_int(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v);
void cfgv_get_enum_int(const void *o, const struct cfg_key *k, char *out, size_t cap);
int cfgv_set_enum_u8(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v);
void cfgv_get_enum_u8(const void *o, const struct cfg_key *k, char *out, size_t cap);
int cfgv_set_bool(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v);
void cfgv_get_bool(const void *o, const struct cfg_key *k, char *out, size_t cap);
int cfgv_set_listen_tls(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v);
void cfgv_get_listen_tls(const void *o, const struct cfg_key *k, char *out, size_t cap);
int cfgv_set_listen(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v);
void cfgv_get_listen(const void *o, const struct cfg_key *k, char *out, size_t cap);
int cfgv_set_pow2(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v);
int cfgv_set_u64_or_0(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v);
int cfgv_set_mode(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v);
void cfgv_get_mode(const void *o, const struct cfg_key *k, char *out, size_t cap);
int cfgv_set_group(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v);
int cfgv_set_log_level(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v);
void cfgv_get_log_level(const void *o, const struct cfg_key *k, char *out, size_t cap);
int cfgv_set_forward(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v);
void cfgv_get_forward(const void *o, const struct cfg_key *k, char *out, size_t cap);
int cfgv_set_deflate_u8(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v);
void cfgv_get_deflate_u8(const void *o, const struct cfg_key *k, char *out, size_t cap);
int cfgv_set_protocols(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v);
void cfgv_get_protocols(const void *o, const struct cfg_key *k, char *out, size_t cap);
int cfgv_set_origins(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v);
int cfgv_set_route_lim(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v);
void cfgv_get_route_lim(const void *o, const struct cfg_key *k, char *out, size_t cap);
int cfgv_set_redis(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v);
void cfgv_get_redis(const void *o, const struct cfg_key *k, char *out, size_t cap);
void cfgv_get_node_id(const void *o, const struct cfg_key *k, char *out, size_t cap);
int cfgv_set_history(struct cfg_ctx *x, void *o, const struct cfg_key *k, const char *v);
void cfgv_get_history(const void *o, const struct cfg_key *k, char *out, size_t cap);
extern const char *const cfgv_yes_no[];

#endif
