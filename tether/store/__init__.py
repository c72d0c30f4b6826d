"""tether.store."""
