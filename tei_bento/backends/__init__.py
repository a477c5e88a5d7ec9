"""Ways of running the network: one module per backend, all behind `base.Backend`.

`select.py` is the one place that picks a model's backend; `/info.backend` is the picked
backend's `name`.
"""
