"""`scripts/fuzz`: malformed requests at the local mesh's ingress and straight at each service.

- `messages`: Hypothesis strategies for any protobuf message, built from its descriptor
  (hypothesis has none for protobuf, and the packages that had one do not run on protobuf 7);
- `cases`: what is sent — generated messages, wrong types, oversized fields, unknown methods,
  bad metadata, garbage HTTP/2;
- `wire`: the raw HTTP/2 side: requests no gRPC client would send, frames no client would write;
- `runner`: sends every case to every target, classifies each end, checks that every process
  lives and serves; `__main__`: the command and its report.
"""
