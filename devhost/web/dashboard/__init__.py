"""The local dashboard: a static page polling ``/dashboard/api/stats`` once a second."""
