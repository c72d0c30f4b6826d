"""tether.training."""
