"""The read side: admin, security dashboard, and the GraphQL audit query and frontend mutation."""
