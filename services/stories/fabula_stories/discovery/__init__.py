"""Finding stories: full-text search and filters over the user's stories
(ListStories with a query or filter), and the user's story statistics."""
