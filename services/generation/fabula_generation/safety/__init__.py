"""Child-safe generation: instructions for the model and moderation checks,
applied to every model call made for a child-safe account (the request
context's mark, fabula_common.context.is_child_safe)."""
