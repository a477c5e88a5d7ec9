"""The framework-free serving engine: tokenize, queue, batch, run, post-process."""
