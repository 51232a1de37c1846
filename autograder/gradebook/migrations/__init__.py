"""Alembic migrations of the gradebook schema, run by :func:`autograder.gradebook.open_gradebook`."""
