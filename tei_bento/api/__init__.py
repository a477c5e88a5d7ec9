"""HTTP adapter: TEI's routes, bodies, headers and error contract over the Engine."""
