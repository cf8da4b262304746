"""App configuration: every hook rail-django installs is installed here, in ``ready()``."""

from django.apps import AppConfig


class RailDjangoConfig(AppConfig):
    name = "rail_django"
    label = "rail_django"
    verbose_name = "Rail Django audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth import signals as auth_signals
        from django.core.signals import setting_changed

        from rail_django import checks  # noqa: F401  (registers the checks)
        from rail_django.alerts.sink_failure import raise_audit_failure_alert
        from rail_django.capture import auth
        from rail_django.conf import on_setting_changed
        from rail_django.delivery.dispatcher import dispatcher, install_process_hooks

        setting_changed.connect(on_setting_changed, dispatch_uid="rail_django.conf.setting_changed")
        auth_signals.user_logged_in.connect(auth.on_user_logged_in, dispatch_uid="rail_django.login")
        auth_signals.user_logged_out.connect(auth.on_user_logged_out, dispatch_uid="rail_django.logout")
        auth_signals.user_login_failed.connect(auth.on_user_login_failed, dispatch_uid="rail_django.login_failed")
        auth.connect()
        dispatcher.on_sink_failure = raise_audit_failure_alert
        install_process_hooks()
        self._record_with_no_code()
        self._install_tracking()

    def _record_with_no_code(self) -> None:
        """Issue 14: account and privilege changes, ``django.security`` logs, lockout rules, integrations, commands."""
        from django.contrib.auth import signals as auth_signals
        from django.core import checks

        from rail_django.alerts import lockout
        from rail_django.alerts.lockout_rules import check_no_code_settings
        from rail_django.capture import accounts, commands, suspicious
        from rail_django.capture.integrations import install_integrations

        checks.register(check_no_code_settings)
        auth_signals.user_logged_in.connect(lockout.on_user_logged_in, dispatch_uid="rail_django.lockout.success")
        accounts.connect()
        suspicious.install()
        install_integrations()
        commands.install_for_command_line()

    @staticmethod
    def _install_tracking() -> None:
        """Model change tracking: receivers for the tracked models, the bulk-write wrapper, its checks."""
        from django.core import checks as django_checks

        from rail_django.capture import model_changes
        from rail_django.conf import on_config_change
        from rail_django.tracking.checks import check_tracked_models
        from rail_django.tracking.registry import rebuild

        model_changes.install()
        on_config_change(rebuild)
        django_checks.register(check_tracked_models, "rail_django")
