"""metarl algorithms."""
