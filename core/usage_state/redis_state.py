"""Usage state in Redis: one atomic Lua script per subscription per batch marks and applies events.

The script checks each transaction_id against its period's dedup set and, only when it was not
there, adds it and applies the event's operations. Marking and applying happen in one script, so a
crash can never leave an event marked but not applied, or applied but not marked.
Planning bounds every value (core.domain.aggregation.MAX_SCALED), and sums are kept in two words
(a single 64-bit integer of millionths overflowed past ~9.2e12 units a period), so no HINCRBY overflows.

Expiry: each key of a period (its state and its dedup marks alike) expires `STATE_RETENTION_S` after the
period ends, or after the last event written to it was received when that is later (a test clock's period
long past, aggregator.planning): its invoice is computed from the archive, so Redis needs it only while the
period is open or just closed, or its customer still billed for it. The marks go with their period: Redis
holds the transaction_ids of a subscription's retained periods only, not of its whole life (at 64-112 bytes
a mark, that grew without end for a subscription that kept receiving events). A transaction_id sent again
after its marks went, whatever its timestamp, is found in the archive by the aggregator before Redis sees
it (aggregator/processor.py), so it still counts once.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from functools import lru_cache

import orjson
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from core.clients import REDIS_FAILED, AnyRedis
from core.domain.aggregation import WEIGHT_BASE, MetricUsage, descale, weighted_units
from core.usage_state.keys import dedup_key, totals_key, unique_key
from core.usage_state.ops import Planned

ONE = ord("1")  # a flag of the script's answer, as iterating bytes gives it

__all__ = ["APPLY_LUA", "MetricUsage", "UsageState", "read_usage", "read_usages", "script_arguments"]

# KEYS: the batch's keys, dedup sets and state keys alike, in the order events first name them. ARGV[1] is
# one JSON array (decoded by Redis's cjson in C: one argument instead of ~6 per event keeps client-side
# encoding and Redis's argument parsing off the hot path) of strings: n, the expire-at of each of the n keys,
# then per event `tx, its dedup set's index, nops, (kind, key index, value, ts) * nops`. Every number
# travels as a string; what the script adds up itself (a batch's counts, a sum's two words) stays an
# integer a Lua double holds exactly ('S' below). Returns one character per event, in order: 1 when
# it was applied, 0 when it was a duplicate (the archive copies the new ones without conflict checks).
#
# A call into Redis from Lua costs more than the command itself, so the script makes few of them:
# the marks are checked with SMISMEMBER and set with SADD a thousand at a time per period; members of a
# unique set are added a thousand at a time, a count goes up once per key, a max or a latest is compared
# with the stored one once per key (the batch's own max, and its latest, the later of equal times
# winning, as applying the events one by one would leave), and so is a sum (the batch's own, in two
# words). A weighted sum is added per event: its words are too large to add up in a Lua double.
# Sums go last, as exact integers in Redis (see the module's note).
APPLY_LUA = """
local A = cjson.decode(ARGV[1])
local nkeys = tonumber(A[1])
local CHUNK = 1000
local BASE = 1000000000000  -- a sum's low word stays below it (core.domain.aggregation.WEIGHT_BASE)
local txs, sets, starts = {}, {}, {}
local i = nkeys + 2
while i <= #A do
  txs[#txs + 1] = A[i]
  sets[#sets + 1] = tonumber(A[i + 1])
  starts[#starts + 1] = i
  i = i + 3 + 4 * tonumber(A[i + 2])
end
local function push(lists, k, value)  -- lists[k], made when missing, gets value at its end
  local list = lists[k]
  if not list then
    list = {}
    lists[k] = list
  end
  list[#list + 1] = value
end
local by_set = {}  -- dedup set's key index -> the events it marks
for e = 1, #txs do
  push(by_set, sets[e], e)
end
local marked = {}
for k, events in pairs(by_set) do
  for s = 1, #events, CHUNK do
    local some = {}
    for n = s, math.min(s + CHUNK - 1, #events) do
      some[#some + 1] = txs[events[n]]
    end
    local answer = redis.call('SMISMEMBER', KEYS[k], unpack(some))
    for n = 1, #answer do
      marked[events[s + n - 1]] = answer[n] == 1
    end
  end
end
local flags, new, fresh, seen = {}, {}, {}, {}
for e = 1, #txs do
  local tx = txs[e]
  fresh[e] = not marked[e] and not seen[tx]
  seen[tx] = true
  flags[e] = fresh[e] and '1' or '0'
  if fresh[e] then
    push(new, sets[e], tx)
  end
end
-- marked before anything is applied, as one by one: a call that fails half-way (Redis out of
-- memory, say) leaves events marked and not counted, never counted and not marked (counted again)
for k, list in pairs(new) do
  for s = 1, #list, CHUNK do
    redis.call('SADD', KEYS[k], unpack(list, s, math.min(s + CHUNK - 1, #list)))
  end
end
local members, counts, maxima, latest, lengths, sums, weighted = {}, {}, {}, {}, {}, {}, {}
for e = 1, #txs do
  if fresh[e] then
    i = starts[e]
    local nops = tonumber(A[i + 2])
    i = i + 3
    for _ = 1, nops do
      local kind, k, value = A[i], tonumber(A[i + 1]), A[i + 2]
      if kind == 'U' then
        push(members, k, value)
      elseif kind == 'N' then
        counts[k] = (counts[k] or 0) + 1
      elseif kind == 'S' then
        -- the batch's sum of a key, in two words as Redis keeps it: an event's high word is from
        -- -1000 to 999 (planning bounds values below 10^15 millionths in size) and the low one is
        -- carried below 10^12 at each step, so both stay integers a Lua double holds exactly
        local words = sums[k]
        if not words then
          words = {0, 0}
          sums[k] = words
        end
        words[1] = words[1] + tonumber(value)
        words[2] = words[2] + tonumber(A[i + 3])
        if words[2] >= BASE then
          words[1], words[2] = words[1] + 1, words[2] - BASE
        end
      elseif kind == 'W' then
        weighted[#weighted + 1] = {k, value, A[i + 3]}  -- a high word up to ~10^17: added as text
      elseif kind == 'X' then
        if (not maxima[k]) or tonumber(value) > tonumber(maxima[k]) then
          maxima[k] = value
        end
      elseif kind == 'L' then
        local ts = A[i + 3]
        if (not latest[k]) or tonumber(ts) >= tonumber(latest[k][2]) then
          latest[k] = {value, ts}
        end
      elseif kind == 'P' then
        lengths[k] = value
      end
      i = i + 4
    end
  end
end
for k, list in pairs(members) do
  for s = 1, #list, CHUNK do
    redis.call('SADD', KEYS[k], unpack(list, s, math.min(s + CHUNK - 1, #list)))
  end
end
for k, value in pairs(lengths) do
  redis.call('HSET', KEYS[k], 'pl', value)
end
for k, n in pairs(counts) do
  redis.call('HINCRBY', KEYS[k], 'n', n)
end
for k, value in pairs(maxima) do
  local current = redis.call('HGET', KEYS[k], 'max')
  if (not current) or tonumber(value) > tonumber(current) then
    redis.call('HSET', KEYS[k], 'max', value)
  end
end
for k, pair in pairs(latest) do
  local current = redis.call('HGET', KEYS[k], 'latest_ts')
  if (not current) or tonumber(pair[2]) >= tonumber(current) then
    redis.call('HSET', KEYS[k], 'latest', pair[1], 'latest_ts', pair[2])
  end
end
-- a period past its retention is not kept, marks and state alike (an expiry in the past deletes the key);
-- a dedup set's expiry is only ever pushed later (a redelivered batch received earlier, or `meterline
-- rebuild`, asks for an earlier one), so marks never go before the newest event they protect asks
local function expire_state()
  for k = 1, nkeys do
    if by_set[k] then
      redis.call('EXPIREAT', KEYS[k], A[k + 1], 'NX')
      redis.call('EXPIREAT', KEYS[k], A[k + 1], 'GT')
    else
      redis.call('EXPIREAT', KEYS[k], A[k + 1])
    end
  end
end
expire_state()
-- sums last, each in two words (core.domain.aggregation.sum_words: the high word would need ~9.2e24 units
-- to overflow), after everything else of the batch is applied and given its expiry
local function add_words(key, high, low, high_value, low_value)
  redis.call('HINCRBY', key, high, high_value)
  if redis.call('HINCRBY', key, low, low_value) >= BASE then
    redis.call('HINCRBY', key, low, string.format('%d', -BASE))
    redis.call('HINCRBY', key, high, 1)
  end
end
for k, words in pairs(sums) do
  add_words(KEYS[k], 'sh', 'sl', string.format('%d', words[1]), string.format('%d', words[2]))
end
for _, w in ipairs(weighted) do
  add_words(KEYS[w[1]], 'wh', 'wl', w[2], w[3])
end
if next(sums) ~= nil or #weighted > 0 then
  expire_state()  -- a key the sums made again after its expiry deleted it goes again
end
return table.concat(flags)
"""


def script_arguments(planned: Sequence[Planned]) -> tuple[list[str], list[str]]:
    """KEYS and the flat argument list (before JSON encoding) for events of one subscription."""
    scope = planned[0].scope
    keys: list[str] = []
    expiry: list[int] = []  # each key's: the latest its events ask for
    index: dict[str, tuple[str, int]] = {}  # key -> its position in KEYS (as the script reads it), in expiry
    marks: dict[str, tuple[str, int]] = {}  # period key -> its dedup set's position in KEYS, in expiry
    events: list[str] = []
    for item in planned:
        ops = item.ops
        expire = item.expire_at_s
        found = marks.get(item.period_key)
        if found is None:
            keys.append(dedup_key(scope, item.period_key))
            expiry.append(expire)
            found = marks[item.period_key] = (str(len(keys)), len(expiry) - 1)
        elif expire > expiry[found[1]]:
            expiry[found[1]] = expire
        mark = found[0]
        events += (item.transaction_id, mark, _COUNTS[len(ops)])
        for op in ops:
            found = index.get(op.key)
            if found is None:
                keys.append(op.key)
                expiry.append(expire)
                found = index[op.key] = (str(len(keys)), len(expiry) - 1)
            elif expire > expiry[found[1]]:  # an event of the period received later (aggregator.planning)
                expiry[found[1]] = expire
            events += (op.kind, found[0], op.value, str(op.timestamp_us) if op.timestamp_us else "0")
    return keys, [str(len(expiry)), *map(str, expiry), *events]


_COUNTS = tuple(str(n) for n in range(8))  # the operations of one event, as text (planning makes at most 4)


# On a Redis Cluster, the most a batch waits for each master's replica to acknowledge its scripts (WAIT)
REPLICA_ACK_TIMEOUT_MS = 2_000


LAYOUT_REFRESH_S = 10.0  # how often the aggregator reads the cluster's layout again (and after any failure)


class ClusterChanging(RedisConnectionError):
    """A master's replica did not acknowledge a batch's scripts in time, or a master is one no more: the
    batch is retried (a no-op where it was applied), so that nothing the archive then keeps can be lost by
    a master failing over."""


class UsageState:
    def __init__(self, redis: AnyRedis):
        self.redis = redis
        self._apply = redis.register_script(APPLY_LUA)
        self._layout_stale = False  # on a cluster: read its layout again before the next batch
        self._layout_read_at = time.monotonic()

    async def apply(self, planned: Sequence[Planned]) -> list[bool]:
        """Apply a batch, one atomic script per subscription, in one round trip. Returns, for each
        event, whether it was applied (False: its transaction_id was already marked)."""
        by_scope: dict[str, list[int]] = defaultdict(list)
        for n, item in enumerate(planned):
            by_scope[item.scope].append(n)
        applied = [False] * len(planned)
        if not by_scope:
            return applied
        calls = [script_arguments([planned[n] for n in positions]) for positions in by_scope.values()]
        if isinstance(self.redis, RedisCluster):
            results = await self._apply_on_cluster(self.redis, calls)
        else:
            async with self.redis.pipeline(transaction=False) as pipe:
                for keys, argv in calls:
                    await self._apply(keys=keys, args=[orjson.dumps(argv)], client=pipe)
                results = await pipe.execute()
        for positions, flags in zip(by_scope.values(), results, strict=True):
            for n, flag in zip(positions, flags, strict=True):
                applied[n] = flag == ONE
        return applied

    async def _apply_on_cluster(self, redis: RedisCluster, calls: Sequence[tuple[list[str], list[str]]]) -> list[bytes]:
        """The scripts of a batch on a Redis Cluster: one pipeline, which redis-py splits into one per master
        (each script's keys share one hash slot) sent concurrently.

        A master acknowledges a script before its replica has it (Redis replicates asynchronously): were it
        killed then, its promoted replica would not have events the archive keeps. So each master's part ends
        with WAIT for its replica, on the same connection, and a batch a replica did not acknowledge is
        retried whole (ClusterChanging: a no-op where it was applied). The client's picture of the cluster
        (which master serves a slot, with which replicas) is read again after any failure and every
        LAYOUT_REFRESH_S: a replica gone or back is then seen, and WAIT is sent where it means something.
        A script new to a master (a promoted replica has no script cache) is loaded and its calls sent again."""
        if self._layout_stale or time.monotonic() - self._layout_read_at > LAYOUT_REFRESH_S:
            await redis.nodes_manager.initialize()
            self._layout_stale, self._layout_read_at = False, time.monotonic()
        results: list[bytes | Exception | None] = [None] * len(calls)
        todo = list(range(len(calls)))
        try:
            for _ in range(2):  # the second time after loading the script where it was missing
                async with redis.pipeline(transaction=False) as pipe:
                    masters: dict[str, ClusterNode] = {}
                    for n in todo:
                        keys, argv = calls[n]
                        # EVALSHA by name: redis-py blocks its pipelined method on a cluster, not the command
                        pipe.execute_command("EVALSHA", self._apply.sha, len(keys), *keys, orjson.dumps(argv))
                        master, replicas = _master_of(redis, keys[0])
                        if replicas:
                            masters.setdefault(master.name, master)
                    for master in masters.values():
                        pipe.execute_command("WAIT", 1, REPLICA_ACK_TIMEOUT_MS, target_nodes=master)
                    answers = await pipe.execute(raise_on_error=False)
                for n, answer in zip(todo, answers, strict=False):
                    results[n] = answer
                failed = next((answer for answer in answers[:len(todo)] if isinstance(answer, Exception)
                               and not isinstance(answer, NoScriptError)), None)
                if failed is not None:
                    raise failed
                acks = answers[len(todo):]
                if any(isinstance(ack, Exception) or ack == 0 for ack in acks):  # a replica lagging, or a
                    # master that is one no more ("WAIT cannot be used with replica instances")
                    raise ClusterChanging(f"a replica did not acknowledge the batch within {REPLICA_ACK_TIMEOUT_MS} "
                                          f"ms: {[ack for ack in acks if isinstance(ack, Exception) or ack == 0]}")
                todo = [n for n in todo if isinstance(results[n], NoScriptError)]
                if not todo:
                    return results  # type: ignore[return-value]  # every one answered its flags
                await redis.script_load(APPLY_LUA)  # on every master
            raise ClusterChanging("the usage script could not be loaded on every master")
        except REDIS_FAILED:  # ResponseError, NoScriptError and ClusterChanging are RedisErrors too
            self._layout_stale = True
            raise


def _master_of(redis: RedisCluster, key: str) -> tuple[ClusterNode, int]:
    """The master serving a key's slot as the client knows the cluster now, and how many replicas it has."""
    nodes = redis.nodes_manager.slots_cache[redis.keyslot(key)]
    return nodes[0], len(nodes) - 1


# "sum" holds what was summed in one word before sums were kept in two ("sh", "sl"): still read
TOTALS_FIELDS = ("n", "sum", "sh", "sl", "max", "latest", "wh", "wl", "pl")


async def read_usage(redis: AnyRedis, scope: str, metric_ids: Sequence[str],
                     period_key: str) -> dict[str, MetricUsage]:
    return (await read_usages(redis, [(scope, metric_ids, period_key)]))[0]


# One subscription's usage in one period, read in one call (its keys share the subscription's hash tag):
# for each metric (KEYS: its unique set, its totals hash), the set's size and the TOTALS_FIELDS, as one
# string: `<size>,<field>,...` per metric, `;` between metrics, a missing field empty. One reply per
# subscription instead of 2 per metric: parsing those replies was most of the cost of reading
# thousands of subscriptions at once (the alerts worker's evaluations).
READ_LUA = "local fields = {" + ", ".join(f"'{name}'" for name in TOTALS_FIELDS) + "}" + """
local out = {}
for k = 1, #KEYS, 2 do
  local parts = {tostring(redis.call('SCARD', KEYS[k]))}
  local values = redis.call('HMGET', KEYS[k + 1], unpack(fields))
  for i = 1, #values do parts[#parts + 1] = values[i] or '' end
  out[#out + 1] = table.concat(parts, ',')
end
return table.concat(out, ';')
"""


def _usage_of(raw: bytes) -> MetricUsage:
    unique, count, one_word, sum_high, sum_low, maximum, latest, high, low, length = (
        int(part) if part else None for part in raw.split(b","))
    unique_count = unique or 0
    return MetricUsage(
        unique_count=unique_count,
        events_count=count if count is not None else unique_count,
        sum=descale((one_word or 0) + (sum_high or 0) * WEIGHT_BASE + (sum_low or 0)),
        max=descale(maximum or 0),
        latest=descale(latest or 0),
        weighted_sum=weighted_units(high or 0, low or 0, length or 0),
    )


@lru_cache(maxsize=16)
def _reader(redis: AnyRedis) -> AsyncScript:
    """READ_LUA registered once per client (its sha computed once), not per read."""
    return redis.register_script(READ_LUA)


READ_TOGETHER = 200  # (scope, period) reads per script call


async def read_usages(redis: AnyRedis, wanted: Sequence[tuple[str, Sequence[str], str]], *, loaded: bool = False
                      ) -> list[dict[str, MetricUsage]]:
    """The usage of each (scope, metric ids, period key), in one round trip: one subscription (current
    usage) with one EVALSHA; many (the alerts worker's) READ_TOGETHER to a call, the calls in a pipeline.
    One call per subscription cost the alerts worker ~60 µs each in redis-py's command packing and reply
    parsing, and Redis a script call each. A script's keys must share one hash slot on a Redis Cluster, so
    there the reads of one subscription go together, one call per subscription, the pipeline sending each
    master its own calls."""
    read = _reader(redis)
    keys_of = [[key for metric_id in metric_ids for key in (
        unique_key(scope, metric_id, period_key), totals_key(scope, metric_id, period_key))]
        for scope, metric_ids, period_key in wanted]
    together = 1 if isinstance(redis, RedisCluster) else READ_TOGETHER
    calls = [[key for keys in keys_of[start:start + together] for key in keys]
             for start in range(0, len(keys_of), together)]
    calls = [keys for keys in calls if keys]
    if len(calls) == 1:
        replies = [await read(keys=calls[0], client=redis)]
    elif isinstance(redis, RedisCluster):
        async with redis.pipeline(transaction=False) as pipe:
            for keys in calls:
                pipe.execute_command("EVALSHA", read.sha, len(keys), *keys)
            replies = await pipe.execute(raise_on_error=False)
        if any(isinstance(reply, NoScriptError) for reply in replies) and not loaded:  # a master new since
            await redis.script_load(READ_LUA)  # (a failover): loaded on every master, then read once more
            return await read_usages(redis, wanted, loaded=True)
        failed = next((reply for reply in replies if isinstance(reply, Exception)), None)
        if failed is not None:
            raise failed
    else:
        async with redis.pipeline(transaction=False) as pipe:
            for keys in calls:
                await read(keys=keys, client=pipe)  # type: ignore[arg-type]  # redis-py takes a pipeline here
            replies = await pipe.execute()
    entries = [entry for reply in replies for entry in reply.split(b";")]
    if len(entries) != sum(len(keys) // 2 for keys in keys_of):
        raise RuntimeError(f"READ_LUA answered {len(entries)} usages for {len(keys_of)} reads")
    read_in_order = iter(entries)
    return [{metric_id: _usage_of(next(read_in_order)) for metric_id in metric_ids} for _, metric_ids, _ in wanted]
