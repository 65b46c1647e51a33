"""Billing: from subscriptions and the event archive to invoices, fees and webhooks.

Pure modules: schedule (what is due when), assemble (fees and totals), render (Lago's invoice
shape), signing (webhook signatures). Adapters (SQL): tables, archive_usage, store, outbox.
"""
