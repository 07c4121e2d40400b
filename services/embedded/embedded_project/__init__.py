"""All three services in one process on the in-memory channel layer (no Redis)."""
