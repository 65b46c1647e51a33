"""The rater: the Lago-compatible API (catalog, current usage, invoices, webhooks) and the biller,
which turns archived usage into invoices."""
