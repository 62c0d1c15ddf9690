"""A council: several models answer a question alone, review each other's
answers anonymously and rank them, and a chairman writes the final answer.
This package holds its prompts and its ranking logic, free of I/O."""
