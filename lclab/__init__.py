"""lclab: an architecture-search laboratory for encoder-decoder context compressors (LCLMs)."""
__version__ = "0.1.0"
__all__ = ["__version__"]
