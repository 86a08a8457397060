"""What a run records about where it ran, its code and its data."""
