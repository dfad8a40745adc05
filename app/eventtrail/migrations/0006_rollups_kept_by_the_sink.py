from django.db import migrations


def forget_rollups(apps, schema_editor):
    """Rollups built by the earlier rule (rebuilt on read from an ingest watermark) may lack the
    last events: forget them. The next query or sink batch builds them once, and the sink keeps
    them from then on."""
    alias = schema_editor.connection.alias
    for name in ("UserRollup", "TargetRollup", "RollupState"):
        apps.get_model("eventtrail", name)._default_manager.using(alias).all().delete()


class Migration(migrations.Migration):

    dependencies = [
        ('eventtrail', '0005_rollups_by_status'),
    ]

    operations = [
        migrations.RunPython(forget_rollups, migrations.RunPython.noop),
    ]
