"""taskloom: a runtime for fast LLM agent programs."""
