"""How events leave the request: the dispatcher, its background worker, the durable journal and sink health."""
