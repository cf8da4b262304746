"""Indexes for the admin's filters and search.

``severity`` + time and ``username`` + time everywhere. On PostgreSQL also two
small partial expression indexes that match the ORM's JSON lookups exactly:
the outcome of unsuccessful events (the admin's outcome filter) and the
attempted username of failed logins (the dashboard's "targeted usernames"
links). Other databases filter those JSON keys without an index.
"""

from django.db import migrations, models

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
    for name, definition in POSTGRESQL_INDEXES:
        schema_editor.execute(f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" {definition}')


def drop_postgresql_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _ in POSTGRESQL_INDEXES:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


class Migration(migrations.Migration):

    dependencies = [
        ("rail_django", "0001_initial"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="auditeventmodel",
            index=models.Index(fields=["severity", "timestamp"], name="rail_audit_sev_ts_idx"),
        ),
        migrations.AddIndex(
            model_name="auditeventmodel",
            index=models.Index(fields=["username", "timestamp"], name="rail_audit_username_ts_idx"),
        ),
        migrations.RunPython(create_postgresql_indexes, drop_postgresql_indexes),
    ]
