"""Indexes for the admin's filters and search.

``severity`` + time and ``username`` + time everywhere. On PostgreSQL also two
small partial expression indexes that match the ORM's JSON lookups exactly:
the outcome of unsuccessful events (the admin's outcome filter) and the
attempted username of failed logins (the dashboard's "targeted usernames"
links). Other databases filter those JSON keys without an index.

On PostgreSQL every index is built ``CONCURRENTLY`` (writes to the audit table
go on during the build), hence ``atomic = False``; see ``_online.py``.
"""

from django.db import migrations, models

from rail_django.migrations._online import add_indexes, create_index

POSTGRESQL_INDEXES = [
    (
        "rail_audit_outcome_ts_idx",
        "((additional_data -> 'outcome'), timestamp) WHERE NOT success",
    ),
    (
        "rail_audit_attempted_ts_idx",
        "((additional_data #> '{context,username_attempted}'), timestamp) WHERE event_type = 'auth.login.failure'",
    ),
]


def create_postgresql_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    table = apps.get_model("rail_django", "AuditEventModel")._meta.db_table
    model = apps.get_model("rail_django", "AuditEventModel")
    assert model._meta.db_table == table
    for name, definition in POSTGRESQL_INDEXES:
        create_index(schema_editor, model, name, definition)


def drop_postgresql_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _ in POSTGRESQL_INDEXES:
        schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')


ADMIN_INDEXES = ["rail_audit_sev_ts_idx", "rail_audit_username_ts_idx"]


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ("rail_django", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="auditeventmodel",
                    index=models.Index(fields=["severity", "timestamp"], name="rail_audit_sev_ts_idx"),
                ),
                migrations.AddIndex(
                    model_name="auditeventmodel",
                    index=models.Index(fields=["username", "timestamp"], name="rail_audit_username_ts_idx"),
                ),
            ],
        ),
        # After the state operation, so the historical model has the indexes to build.
        migrations.RunPython(*add_indexes("AuditEventModel", ADMIN_INDEXES)),
        migrations.RunPython(create_postgresql_indexes, drop_postgresql_indexes),
    ]
