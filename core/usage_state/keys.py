"""Redis key layout of usage state. Every key of one subscription shares the hash tag `{org:subscription}`.

- `ml:{scope}:tx`                          set of transaction_ids already applied (dedup marks)
- `ml:{scope}:m:<metric>:<period>:u`       set of distinct values (unique_count_agg)
- `ml:{scope}:m:<metric>:<period>:h`       hash: n (events), sum, max, latest, latest_ts (scaled integers)
"""

from __future__ import annotations


def dedup_key(scope: str) -> str:
    return f"ml:{{{scope}}}:tx"


def unique_key(scope: str, metric_id: str, period_key: str) -> str:
    return f"ml:{{{scope}}}:m:{metric_id}:{period_key}:u"


def totals_key(scope: str, metric_id: str, period_key: str) -> str:
    return f"ml:{{{scope}}}:m:{metric_id}:{period_key}:h"
