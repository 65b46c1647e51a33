"""Redis key layout of usage state. Every key of one subscription shares the hash tag `{org:subscription}`.

- `ml:{scope}:tx:<period>`                 set of the transaction_ids applied to the period (dedup marks)
- `ml:{scope}:m:<metric>:<period>:u`       set of distinct values (unique_count_agg)
- `ml:{scope}:m:<metric>:<period>:h`       hash: n (events), sum, max, latest, latest_ts (scaled integers)
"""

from __future__ import annotations


def dedup_key(scope: str, period_key: str) -> str:
    """The dedup marks of one period: they go with its state (core.usage_state.redis_state)."""
    return f"ml:{{{scope}}}:tx:{period_key}"


def unique_key(scope: str, metric_id: str, period_key: str) -> str:
    return f"ml:{{{scope}}}:m:{metric_id}:{period_key}:u"


def totals_key(scope: str, metric_id: str, period_key: str) -> str:
    return f"ml:{{{scope}}}:m:{metric_id}:{period_key}:h"
