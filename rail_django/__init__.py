"""rail-django: a security and activity audit trail for Django projects."""

__version__ = "0.1.0"
