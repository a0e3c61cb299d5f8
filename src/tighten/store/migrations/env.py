"""Alembic environment: tighten runs migrations on a connection it passes in."""

from alembic import context

from tighten.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only from the alembic command line
    raise SystemExit("Run migrations with `tighten db upgrade`.")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
