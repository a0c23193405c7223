"""Feature extensions, each with one `setup()`."""
