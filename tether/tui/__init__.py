"""tether.tui."""
