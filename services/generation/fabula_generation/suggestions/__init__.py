"""Story suggestions (SuggestStories): ideas for a new story, from the model
through structured output or from the offline generator; metered as cost
only (no quota reserved, never a generation of the plan) and rate-limited
per user."""
