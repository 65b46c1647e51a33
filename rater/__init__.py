"""The rater: the Lago-compatible API, pricing, current usage and invoices."""
