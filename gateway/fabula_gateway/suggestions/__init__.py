"""Story suggestions: ideas for new stories (generation service)."""
