"""Deployment recipes: GPU sizing, Truss configs for Baseten, the configs/ templates.

Nothing here is imported by the server; it only writes files (`tei-bento truss`,
`python -m tei_bento.deploy.presets`) that start the server with the right flags.
"""
