"""Schema changes that never hold a large audit table locked (used by the migrations beside it).

On PostgreSQL an index is built ``CONCURRENTLY`` (writes go on; the migration
must be ``atomic = False``) and a unique constraint is added ``USING INDEX``
an index built that way, which takes its ACCESS EXCLUSIVE lock only for a
catalogue update. Other databases get Django's ordinary schema editor calls.
Each migration keeps its state operations (``SeparateDatabaseAndState``), so
``makemigrations`` sees the same models.
"""

from __future__ import annotations

from typing import Any


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _drop_invalid(schema_editor: Any, name: str) -> None:
    """An index left invalid by an interrupted CREATE INDEX CONCURRENTLY is dropped, so the retry builds it."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [_q(name)]
        )
        row = cursor.fetchone()
    if row and row[0]:
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_q(name)}")


def create_index(schema_editor: Any, model: Any, name: str, definition: str, *, unique: bool = False) -> None:
    """``CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS name ON table definition`` (PostgreSQL)."""
    _drop_invalid(schema_editor, name)
    kind = "UNIQUE INDEX" if unique else "INDEX"
    schema_editor.execute(
        f"CREATE {kind} CONCURRENTLY IF NOT EXISTS {_q(name)} ON {_q(model._meta.db_table)} {definition}"
    )


def add_indexes(model_name: str, index_names: list[str]) -> tuple[Any, Any]:
    """RunPython (forward, backward) adding the model's indexes ``index_names``."""

    def indexes(apps: Any) -> tuple[Any, list[Any]]:
        model = apps.get_model("rail_django", model_name)
        return model, [index for index in model._meta.indexes if index.name in index_names]

    def forward(apps: Any, schema_editor: Any) -> None:
        model, found = indexes(apps)
        for index in found:
            if schema_editor.connection.vendor == "postgresql":
                columns = ", ".join(_q(model._meta.get_field(f).column) for f in index.fields)
                create_index(schema_editor, model, index.name, f"({columns})")
            else:
                schema_editor.add_index(model, index)

    def backward(apps: Any, schema_editor: Any) -> None:
        model, found = indexes(apps)
        for index in found:
            schema_editor.remove_index(model, index)

    return forward, backward


def add_unique_field(model_name: str, field_name: str) -> tuple[Any, Any]:
    """RunPython (forward, backward) adding a nullable ``unique=True`` field without a long lock."""

    def forward(apps: Any, schema_editor: Any) -> None:
        model = apps.get_model("rail_django", model_name)
        field = model._meta.get_field(field_name)
        if schema_editor.connection.vendor != "postgresql":
            schema_editor.add_field(model, field)
            return
        table, column = model._meta.db_table, field.column
        name = f"{table}_{column}_key"[:63]
        db_type = field.db_type(schema_editor.connection)
        schema_editor.execute(f"ALTER TABLE {_q(table)} ADD COLUMN IF NOT EXISTS {_q(column)} {db_type} NULL")
        create_index(schema_editor, model, name, f"({_q(column)})", unique=True)
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_constraint WHERE conname = %s", [name])
            exists = cursor.fetchone() is not None
        if not exists:
            schema_editor.execute(f"ALTER TABLE {_q(table)} ADD CONSTRAINT {_q(name)} UNIQUE USING INDEX {_q(name)}")

    def backward(apps: Any, schema_editor: Any) -> None:
        model = apps.get_model("rail_django", model_name)
        schema_editor.remove_field(model, model._meta.get_field(field_name))

    return forward, backward
