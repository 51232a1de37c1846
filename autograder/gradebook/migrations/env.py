"""Alembic's entry point: migrate the connection that ``open_gradebook`` hands over.

There is no alembic.ini: ``autograder.gradebook.store`` configures alembic
in code. To change the schema, add the next ``versions/NNNN_*.py`` (the shape
is ``script.py.mako``), change ``schema.py`` to match, and open a gradebook.
"""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "the gradebook migrations run through autograder.gradebook.open_gradebook(URL), "
        "which hands alembic an open connection; they are not meant for the alembic command line"
    )

# The caller holds the transaction (and a lock); alembic runs inside it and commits nothing itself.
context.configure(connection=connection)
with context.begin_transaction():
    context.run_migrations()
