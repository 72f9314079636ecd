"""umt: a universal music translation network (Mor et al., 2018) for PyTorch."""

__version__ = "0.1.0"
