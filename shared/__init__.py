"""StreamingPOC's pure core: schemas, validation, transforms, file layout and lake I/O.

Nothing here imports Azure Functions types; ``functions/`` adapts bindings to it.
"""
