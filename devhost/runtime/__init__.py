"""The Functions host itself, with the Python worker's part: settings, indexing, invocation, worker processes."""
