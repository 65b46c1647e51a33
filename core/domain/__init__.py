"""The billing domain as pure functions of typed values, with no I/O and no client: periods,
subscription statuses, money, aggregation and pricing."""
