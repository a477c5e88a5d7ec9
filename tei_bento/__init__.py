"""tei-bento: a drop-in replacement for Hugging Face text-embeddings-inference, served by BentoML."""

__version__ = "0.1.0"
