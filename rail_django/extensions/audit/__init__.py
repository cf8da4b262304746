"""The audit extension: the stored event model, its GraphQL API, admin and dashboard."""
