"""tether: tool-using LLM agents that learn from their own work."""

__version__ = "0.1.0"
