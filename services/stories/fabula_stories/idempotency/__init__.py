"""Idempotency-Keys of the requests that write a segment (and so charge a
generation): CreateStory, ContinueStory, EndStory."""
