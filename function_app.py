"""The StreamingPOC function app: registers the blueprints in ``functions/``, nothing else."""

import azure.durable_functions as df
import azure.functions as func

from functions import compaction, entities, generator, http, processing

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(generator.bp)
app.register_functions(processing.bp)
app.register_functions(entities.bp)
app.register_functions(http.bp)
app.register_functions(compaction.bp)
