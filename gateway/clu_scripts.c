/*
 * The Lua scripts Redis runs for the cluster, by their S_* index; loaded at each connect
 * (SCRIPT LOAD) and called by their SHA-1 (EVALSHA).
 */
#include "gateway/cluster_int.h"

/* The scripts: each runs atomically in Redis, so a publish is numbered, kept and sent as
 * one step, and a recovery reads a consistent history. TIME is Redis's own clock: the
 * gateways' clocks never meet. Numbers go out through string.format('%d'): Lua 5.1
 * prints doubles with 14 digits otherwise. */
#define LUA_NOW "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
const char *const clu__scripts[N_SCRIPTS] = {
	/* KEYS meta, stream; ARGV channel, header, payload, max, age ms */
	[S_PUBLISH] =
	"local e = redis.call('HGET', KEYS[1], 'e') "
	"if not e then local t = redis.call('TIME') e = t[1] .. string.format('%06d', tonumber(t[2])) "
	"redis.call('HSET', KEYS[1], 'e', e) end "
	"local o = string.format('%d', redis.call('HINCRBY', KEYS[1], 'o', 1)) "
	"local msg = ARGV[2] .. o .. ' ' .. e .. ' ' .. ARGV[3] "
	"redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], '*', 'o', o, 'm', msg) "
	LUA_NOW
	"redis.call('XTRIM', KEYS[2], 'MINID', string.format('%d', now - tonumber(ARGV[5]))) "
	"redis.call('PEXPIRE', KEYS[1], ARGV[5]) redis.call('PEXPIRE', KEYS[2], ARGV[5]) "
	"return {o, e, redis.call('PUBLISH', ARGV[1], msg)}",
	/* KEYS meta, stream; ARGV since, epoch, max. {status, offset, epoch, messages...} */
	[S_RECOVER] =
	"local e = redis.call('HGET', KEYS[1], 'e') "
	"local o = tonumber(redis.call('HGET', KEYS[1], 'o') or '0') "
	"if not e then return {1, '0', '0'} end "
	"local os = string.format('%d', o) "
	"local since = tonumber(ARGV[1]) "
	"if e ~= ARGV[2] or since > o then return {1, os, e} end "
	"if since == o then return {0, os, e} end "
	"local n = o - since "
	"if n > tonumber(ARGV[3]) then return {2, os, e} end "
	"local r = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', n) "
	"if #r < n or tonumber(r[#r][2][2]) ~= since + 1 then return {2, os, e} end "
	"local out = {0, os, e} "
	"for i = #r, 1, -1 do out[#out + 1] = r[i][2][4] end "
	"return out",
	/* KEYS presence, expiries; ARGV node, share, ttl ms */
	[S_PRES_SET] =
	LUA_NOW
	"redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) "
	"redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1]) "
	"redis.call('PEXPIRE', KEYS[1], ARGV[3]) redis.call('PEXPIRE', KEYS[2], ARGV[3]) "
	"return 1",
	/* KEYS presence, expiries, meta. {node, share, node, share, ...}, offset, epoch */
	[S_PRES_GET] =
	LUA_NOW
	"local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now) "
	"for _, d in ipairs(dead) do redis.call('HDEL', KEYS[1], d) redis.call('ZREM', KEYS[2], d) end "
	"return {redis.call('HGETALL', KEYS[1]), redis.call('HGET', KEYS[3], 'o') or '0', "
	"redis.call('HGET', KEYS[3], 'e') or '0'}",
	/* KEYS node key, nodes; ARGV token, ttl ms, node. {1, live nodes} or {0}. A new
	 * registration is announced on the channel wsgw:nodes, so that the others know at
	 * once whom to wait for after an outage. */
	[S_REGISTER] =
	"local cur = redis.call('GET', KEYS[1]) "
	"if cur and cur ~= ARGV[1] then return {0} end "
	"if not cur then redis.call('PUBLISH', KEYS[2], ARGV[3]) end "
	"redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
	LUA_NOW
	"redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[3]) "
	"redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) "
	"return {1, redis.call('ZRANGEBYSCORE', KEYS[2], now, '+inf')}",
	/* KEYS nodes; ARGV channel prefix, node... The nodes not registered, or registered
	 * but not subscribed to their own channel (which they subscribe last). */
	[S_READY] =
	LUA_NOW
	"local missing = {} "
	"for i = 2, #ARGV do "
	"local s = redis.call('ZSCORE', KEYS[1], ARGV[i]) "
	"local r = redis.call('PUBSUB', 'NUMSUB', ARGV[1] .. ARGV[i]) "
	"if not s or tonumber(s) < now or r[2] == 0 then missing[#missing + 1] = ARGV[i] end "
	"end "
	"return missing",
};
