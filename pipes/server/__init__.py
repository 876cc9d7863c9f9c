"""pipesd's transport: the tornado application that serves the RPC API, health and metrics."""
