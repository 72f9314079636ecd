"""umt: a universal music translation network (Mor et al., 2018) for PyTorch."""

__version__ = "0.1.0"
DEFAULT_SAMPLE_RATE = 16000  # Hz: the rate models work at unless a dataset says otherwise
