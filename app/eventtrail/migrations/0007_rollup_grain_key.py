from django.db import migrations, models


def forget_rollups(apps, schema_editor):
    """Rows kept before the grain key may hold a grain twice (two writers created it at once):
    forget them. The next query or sink batch builds them once, with their keys."""
    alias = schema_editor.connection.alias
    for name in ("UserRollup", "TargetRollup", "RollupState"):
        apps.get_model("eventtrail", name)._default_manager.using(alias).all().delete()


class Migration(migrations.Migration):

    dependencies = [
        ("eventtrail", "0006_rollups_kept_by_the_sink"),
    ]

    operations = [
        migrations.RunPython(forget_rollups, migrations.RunPython.noop),
        migrations.AddField(
            model_name="targetrollup",
            name="grain",
            field=models.TextField(default=""),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="userrollup",
            name="grain",
            field=models.TextField(default=""),
            preserve_default=False,
        ),
        migrations.AddConstraint(
            model_name="targetrollup",
            constraint=models.UniqueConstraint(fields=("day", "grain"), name="et_tr_grain"),
        ),
        migrations.AddConstraint(
            model_name="userrollup",
            constraint=models.UniqueConstraint(fields=("day", "grain"), name="et_ur_grain"),
        ),
    ]
