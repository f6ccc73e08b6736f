"""behavior bricks, one per file; each registers itself in the catalog."""
