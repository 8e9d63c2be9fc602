from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("calls", "0001_initial"),
    ]

    operations = [
        migrations.RenameField("session", "phone_jid", "address"),
        migrations.AlterField(
            model_name="session",
            name="address",
            field=models.CharField(blank=True, default="", max_length=255),
        ),
        migrations.RemoveIndex(model_name="session", name="session_pairing_idx"),
        migrations.RemoveField(model_name="session", name="qr_payload"),
        migrations.RemoveField(model_name="session", name="qr_created_at"),
        migrations.RemoveField(model_name="session", name="pairing_code"),
        migrations.RemoveField(model_name="session", name="pairing_phone"),
        migrations.AddField(
            model_name="session",
            name="carrier_settings",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="session",
            name="credentials",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.AddField(
            model_name="session",
            name="line_state",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="session",
            name="last_error",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="session",
            name="line_holder",
            field=models.CharField(blank=True, default="", max_length=128),
        ),
        migrations.AddField(
            model_name="session",
            name="line_lease_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="session",
            index=models.Index(
                fields=["carrier", "connection_state"], name="session_carrier_state_idx"
            ),
        ),
        migrations.RenameField("call", "peer_jid", "peer_address"),
        migrations.AlterField(
            model_name="call",
            name="peer_address",
            field=models.CharField(max_length=255),
        ),
        migrations.RemoveField(model_name="call", name="behavior"),
        migrations.AddField(
            model_name="call",
            name="end_detail",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="call",
            name="transport",
            field=models.CharField(blank=True, default="", max_length=16),
        ),
    ]
