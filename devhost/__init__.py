"""The local host: runs function_app.app without the Azure Functions host (development and tests only)."""
