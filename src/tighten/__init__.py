"""tighten: a self-improvement loop for LLM agents."""
__version__ = "0.1.0"
