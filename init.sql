-- Run by the PostgreSQL container on first start. The first Alembic migration also creates
-- the schema when it is missing, so this is a convenience, not a requirement.
CREATE SCHEMA IF NOT EXISTS image_clustering;
