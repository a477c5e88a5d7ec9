"""What a model is for: one module per task (embedding, SPLADE, reranker, classifier).

A task owns the transformers class that loads the folder, the network output it reads,
the head that turns a batch's output into rows, the jobs that turn a row into an answer,
the routes it serves, and its `/info` model_type. `registry.py` lists them.
"""
