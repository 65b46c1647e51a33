"""Usage state in Redis: one atomic Lua script per subscription per batch marks and applies events.

The script checks each transaction_id against the subscription's dedup set and, only when it
was not there, adds it and applies the event's operations. Marking and applying happen in one
script, so a crash can never leave an event marked but not applied, or applied but not marked.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from redis.asyncio import Redis

from aggregator.keys import dedup_key, totals_key, unique_key
from aggregator.model import VALUE_SCALE, Planned

# KEYS[1] dedup set, KEYS[2..] state keys. ARGV: per event `tx, nops, (kind, key index, value, ts) * nops`.
# Returns one flag per event: 1 applied, 0 duplicate.
APPLY_LUA = """
local applied = {}
local i = 1
while i <= #ARGV do
  local tx = ARGV[i]
  local nops = tonumber(ARGV[i + 1])
  i = i + 2
  local fresh = redis.call('SADD', KEYS[1], tx) == 1
  for _ = 1, nops do
    local kind, key, value, ts = ARGV[i], KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2], ARGV[i + 3]
    i = i + 4
    if fresh then
      if kind == 'U' then
        redis.call('SADD', key, value)
      elseif kind == 'N' then
        redis.call('HINCRBY', key, 'n', 1)
      elseif kind == 'S' then
        redis.call('HINCRBY', key, 'sum', value)
      elseif kind == 'X' then
        local current = redis.call('HGET', key, 'max')
        if (not current) or tonumber(value) > tonumber(current) then
          redis.call('HSET', key, 'max', value)
        end
      elseif kind == 'L' then
        local current = redis.call('HGET', key, 'latest_ts')
        if (not current) or tonumber(ts) >= tonumber(current) then
          redis.call('HSET', key, 'latest', value, 'latest_ts', ts)
        end
      end
    end
  end
  applied[#applied + 1] = fresh and 1 or 0
end
return applied
"""


def script_arguments(planned: Sequence[Planned]) -> tuple[list[str], list[str]]:
    """KEYS and ARGV of one script call for events of a single subscription (same scope)."""
    keys = [dedup_key(planned[0].scope)]
    index: dict[str, int] = {}
    argv: list[str] = []
    for item in planned:
        argv += [item.transaction_id, str(len(item.ops))]
        for op in item.ops:
            if op.key not in index:
                keys.append(op.key)
                index[op.key] = len(keys)
            argv += [op.kind, str(index[op.key]), op.value, str(op.timestamp_us)]
    return keys, argv


class UsageState:
    def __init__(self, redis: Redis):
        self.redis = redis
        self._apply = redis.register_script(APPLY_LUA)

    async def apply(self, planned: Sequence[Planned]) -> int:
        """Apply a batch, one atomic script per subscription, in one round trip. Returns events applied."""
        by_scope: dict[str, list[Planned]] = defaultdict(list)
        for item in planned:
            by_scope[item.scope].append(item)
        if not by_scope:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for items in by_scope.values():
                keys, argv = script_arguments(items)
                await self._apply(keys=keys, args=argv, client=pipe)
            results = await pipe.execute()
        return sum(sum(int(flag) for flag in flags) for flags in results)


@dataclass(frozen=True)
class MetricUsage:
    """Aggregated state of one metric in one period, as read back for pricing."""

    unique_count: int
    events_count: int
    sum: Decimal
    max: Decimal
    latest: Decimal


def _descale(raw: bytes | None) -> Decimal:
    return Decimal(int(raw)) / VALUE_SCALE if raw is not None else Decimal(0)


async def read_usage(redis: Redis, scope: str, metric_ids: Sequence[str], period_key: str) -> dict[str, MetricUsage]:
    async with redis.pipeline(transaction=False) as pipe:
        for metric_id in metric_ids:
            pipe.scard(unique_key(scope, metric_id, period_key))
            pipe.hmget(totals_key(scope, metric_id, period_key), "n", "sum", "max", "latest")
        results = await pipe.execute()
    usage = {}
    for position, metric_id in enumerate(metric_ids):
        unique_count = int(results[2 * position])
        count, total, maximum, latest = results[2 * position + 1]
        usage[metric_id] = MetricUsage(
            unique_count=unique_count,
            events_count=int(count) if count is not None else unique_count,
            sum=_descale(total),
            max=_descale(maximum),
            latest=_descale(latest),
        )
    return usage
