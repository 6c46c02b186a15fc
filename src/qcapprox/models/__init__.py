"""Model families: one backbone trained for one dopant at all 13 limits."""
