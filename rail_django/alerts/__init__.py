"""Failed-login counting, threshold alerts and the lockout backend."""
