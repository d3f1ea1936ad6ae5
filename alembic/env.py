"""Alembic environment: migrations are the only way the schema is built (tests included)."""

from logging.config import fileConfig

from sqlalchemy import pool, text

from alembic import context
from config import get_settings
from database.database import SCHEMA, create_db_engine, is_sqlite
from database.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def database_url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().resolved_database_url


def run_migrations_offline() -> None:
    url = database_url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        version_table_schema=None if is_sqlite(url) else SCHEMA,
        include_schemas=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = database_url()
    engine = create_db_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        if not is_sqlite(url):
            # The version table lives in our schema, so the schema must exist before Alembic looks.
            connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
            connection.commit()
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table_schema=None if is_sqlite(url) else SCHEMA,
            include_schemas=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
