"""Data stage: load a team's files, map them to typed records, clean, scrub, deduplicate and split."""
