"""qr-collector: the site's central collector (MQTT -> SQLite/PostgreSQL, exactly once, gaps repaired)."""
