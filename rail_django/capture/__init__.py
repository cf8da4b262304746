"""Where events are born: request context, auth signals, GraphQL operations (and, next, model changes and integrations)."""
