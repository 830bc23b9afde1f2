"""``/api/v4`` views of groups, projects, members and deploy tokens."""
