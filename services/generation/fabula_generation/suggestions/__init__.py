"""Story suggestions (SuggestStories): ideas for a new story, from the model
through structured output or from the offline generator; metered as cost
only (a cost-only reservation before the model call, so the plan's cost
limit stops them; never a generation of the plan) and rate-limited per user."""
