"""Share links: a story's followed path, read-only and anonymous, by an
unguessable token of which only the SHA-256 is stored."""
