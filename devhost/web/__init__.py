"""The Functions host's HTTP side: HTTP triggers under /api, the Durable HTTP API, and the local dashboard."""
