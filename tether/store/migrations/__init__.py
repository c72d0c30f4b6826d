"""Alembic migrations of the trajectory store (run by ``tether.store.migrate``)."""
