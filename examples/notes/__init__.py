"""A notes service: the store with a TTL, pushes to watching connections, an auth pre-handler."""
