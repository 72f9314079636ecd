"""Data: the built-in benchmark corpus, dataset preparation, and training crops."""
