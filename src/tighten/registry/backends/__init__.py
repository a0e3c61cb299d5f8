"""Registry backends: the database (default), a git repository, Langfuse, PromptLayer."""
