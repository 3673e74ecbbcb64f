"""The HTTP API: the FastAPI app, the switchboard of live calls, endpoints and event delivery."""
