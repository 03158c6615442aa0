"""Background work that consumes the registry's events, apart from the routes."""
