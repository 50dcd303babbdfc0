"""The safety office's web page (`qr-collector web`): today's compliance, the fleet, history, tracing,
locations, in Vietnamese by default. It calls the reports' functions (collector/reports/), never a copy.

Importing this package imports no web framework: collector/tables.py registers `collector.web.tables`.
"""
