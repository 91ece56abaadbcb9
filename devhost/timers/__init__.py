"""The timer trigger (the Functions host's own): NCRONTAB schedules and the runner that fires them (UTC)."""
