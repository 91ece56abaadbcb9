"""The local host: runs function_app.app without the Azure Functions host (development and tests only).

Its parts, as the Functions host and its extensions divide the work in Azure:

- ``runtime``: the host itself (settings, indexing, invocation, worker processes, life cycle);
- ``kafka``: the Kafka extension (triggers, client settings, output binding);
- ``durable``: the Durable Functions extension's entities (signals, state and their store);
- ``web``: HTTP triggers, the Durable HTTP API and the dashboard;
- ``timers``: the timer trigger and its NCRONTAB schedules;
- ``services``: the broker and Azurite a local run starts in place of the Azure services.
"""
