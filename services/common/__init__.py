"""Value types and persistence helpers the three services share (owned by the domain helper).

Candidates for services/runtime: they live here only until the runtime owner takes them over.
"""
