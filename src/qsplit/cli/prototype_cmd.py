"""Commands of this group register themselves on the root app (filled in by its owner)."""
