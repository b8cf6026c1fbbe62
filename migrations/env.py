"""Alembic environment: runs every revision as the database owner (admin URL)."""

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
url = config.attributes.get("admin_url") or config.get_main_option("sqlalchemy.url")


def run_migrations_online() -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
