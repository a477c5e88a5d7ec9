"""TEI's gRPC API (`tei.v1`): the proto, its committed Python modules, and (next) the server
that answers it over the same engines as HTTP."""
