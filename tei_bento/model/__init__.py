"""Everything about the model folder and the forward pass; nothing about HTTP."""
