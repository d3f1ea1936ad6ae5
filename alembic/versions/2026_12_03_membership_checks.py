"""membership checks: one check per statement, not two foreign-key triggers per membership row

A batch of 100k images inserted 100k memberships, and PostgreSQL ran two foreign-key triggers
per row (image_batch_association -> image_batches, -> images): 200k lookups and locks, 0.75 s
of the insert's 1.2 s on a machine at load 3.5, and 1.9-4 s of it under load. PostgreSQL only:
the two foreign keys become statement-level triggers that do the same set-wise, once per
statement (the transition tables say which rows):
- an INSERT of memberships locks their batches, then their images (FOR KEY SHARE, in id order:
  the lock order of services/lock_conflicts.py), as the foreign-key check did, and fails with
  foreign_key_violation (23503) when one of them does not exist (deleted meanwhile: the
  services retry, and their retry answers 404);
- a DELETE of images or batches deletes their memberships (ON DELETE CASCADE did), a TRUNCATE
  of either deletes all memberships;
- a membership's batch_id and image_id, and the ids of images and batches, are never changed
  (no code does; an UPDATE that tries fails, as the foreign keys' NO ACTION did).
The writers run at READ COMMITTED (database.database): each statement of a trigger sees rows
committed before it, so a membership committed while its image's delete waited for the
membership's lock is deleted by the delete's cascade. SQLite keeps its foreign keys (one
writer; its per-row check is an index probe).

Revision ID: 20261203_i22_membership_checks
Revises: 20261203_i20_sweep_looks
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261203_i22_membership_checks"
down_revision: str | None = "20261203_i20_sweep_looks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "image_clustering"
MEMBERS = f"{SCHEMA}.image_batch_association"
FOREIGN_KEYS = {
    "fk_image_batch_association_batch_id_image_batches": ("batch_id", "image_batches"),
    "fk_image_batch_association_image_id_images": ("image_id", "images"),
}


def _existence_check(column: str, table: str) -> str:
    """plpgsql: lock the rows of `table` the new memberships name, in id order; fail when one
    is missing. EXECUTE plans the lock with the ids at hand (a transition table has no
    statistics: planned on it, 100k ids were 100k index probes, 0.6 s, against a scan)."""
    return f"""
        ids := ARRAY(SELECT DISTINCT {column} FROM new_members);
        EXECUTE 'SELECT count(*) FROM (SELECT id FROM {SCHEMA}.{table} WHERE id = ANY($1)
                 ORDER BY id FOR KEY SHARE) locked' INTO found USING ids;
        IF found < cardinality(ids) THEN
            RAISE EXCEPTION 'a membership names a row of {table} that does not exist'
                USING ERRCODE = 'foreign_key_violation', TABLE = 'image_batch_association',
                      COLUMN = '{column}';
        END IF;"""


_UP = (
    *(f"ALTER TABLE {MEMBERS} DROP CONSTRAINT {name}" for name in FOREIGN_KEYS),
    f"""
    CREATE FUNCTION {SCHEMA}.check_new_memberships() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        ids integer[];
        found bigint;
    BEGIN
        {_existence_check("batch_id", "image_batches")}
        {_existence_check("image_id", "images")}
        RETURN NULL;
    END
    $$""",
    *(
        f"""
    CREATE FUNCTION {SCHEMA}.delete_memberships_of_{rows}() RETURNS trigger LANGUAGE plpgsql
    AS $$
    BEGIN
        DELETE FROM {MEMBERS} m USING old_rows o WHERE m.{column} = o.id;
        RETURN NULL;
    END
    $$"""
        for rows, column in (("images", "image_id"), ("batches", "batch_id"))
    ),
    f"""
    CREATE FUNCTION {SCHEMA}.delete_all_memberships() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        -- Not TRUNCATE: a TRUNCATE naming both tables is still using the memberships here.
        DELETE FROM {MEMBERS};
        RETURN NULL;
    END
    $$""",
    f"""
    CREATE FUNCTION {SCHEMA}.refuse_key_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the key of a row of % is never changed (memberships name it)',
            TG_TABLE_NAME USING ERRCODE = 'foreign_key_violation';
    END
    $$""",
    f"""CREATE TRIGGER memberships_checked_on_insert AFTER INSERT ON {MEMBERS}
    REFERENCING NEW TABLE AS new_members FOR EACH STATEMENT
    EXECUTE FUNCTION {SCHEMA}.check_new_memberships()""",
    f"""CREATE TRIGGER memberships_keys_kept BEFORE UPDATE OF batch_id, image_id ON {MEMBERS}
    FOR EACH ROW WHEN (OLD.batch_id <> NEW.batch_id OR OLD.image_id <> NEW.image_id)
    EXECUTE FUNCTION {SCHEMA}.refuse_key_change()""",
    *(
        statement
        for table, cascade in (
            ("images", "delete_memberships_of_images"),
            ("image_batches", "delete_memberships_of_batches"),
        )
        for statement in (
            f"""CREATE TRIGGER {table}_memberships_deleted AFTER DELETE ON {SCHEMA}.{table}
            REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
            EXECUTE FUNCTION {SCHEMA}.{cascade}()""",
            f"""CREATE TRIGGER {table}_memberships_truncated AFTER TRUNCATE ON {SCHEMA}.{table}
            FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.delete_all_memberships()""",
            f"""CREATE TRIGGER {table}_ids_kept BEFORE UPDATE OF id ON {SCHEMA}.{table}
            FOR EACH ROW WHEN (OLD.id <> NEW.id)
            EXECUTE FUNCTION {SCHEMA}.refuse_key_change()""",
        )
    ),
)
_DOWN = (
    *(
        f"DROP TRIGGER {table}_{name} ON {SCHEMA}.{table}"
        for table in ("images", "image_batches")
        for name in ("ids_kept", "memberships_truncated", "memberships_deleted")
    ),
    f"DROP TRIGGER memberships_keys_kept ON {MEMBERS}",
    f"DROP TRIGGER memberships_checked_on_insert ON {MEMBERS}",
    *(
        f"DROP FUNCTION {SCHEMA}.{function}()"
        for function in (
            "refuse_key_change",
            "delete_all_memberships",
            "delete_memberships_of_batches",
            "delete_memberships_of_images",
            "check_new_memberships",
        )
    ),
    *(
        f"""ALTER TABLE {MEMBERS} ADD CONSTRAINT {name} FOREIGN KEY ({column})
        REFERENCES {SCHEMA}.{table} (id) ON DELETE CASCADE"""
        for name, (column, table) in FOREIGN_KEYS.items()
    ),
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _UP:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _DOWN:
            op.execute(statement)
