"""The StreamingPOC function app: registers the blueprints in ``functions/``, nothing else."""

import azure.durable_functions as df
import azure.functions as func

from functions import generator, processing

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(generator.bp)
app.register_functions(processing.bp)
