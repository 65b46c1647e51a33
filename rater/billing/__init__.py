"""Billing: from subscriptions and the event archive to invoices, fees and webhooks.

Pure modules: schedule (what is due when), grouping (which invoices a run writes), assemble (fees,
totals, numbers), render (Lago's invoice shape), signing (webhook signatures). Adapters (SQL):
reads, archive_usage, writer, drafts, documents, outbox.
"""
