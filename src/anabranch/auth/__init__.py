"""Authentication, authorization and delegation tokens, as Pravega does them.

- ``permissions``: resource strings (``prn::/scope:S/stream:T``), permissions, ACLs;
- ``passwords``: the password file (users, PBKDF2 hashes, ACLs);
- ``handlers``: authentication handlers by method (``Basic`` → password file), the registry;
- ``tokens``: delegation tokens (JWT, HS256) and the system token; signing keys;
- ``rpc_rules`` + ``grpc_auth``: the controller's rpc → permission table and its gRPC interceptor;
- ``wire_auth``: the segment store's wire command → permission table and token check;
- ``server``: ``ServerAuth``, the per-process settings; ``options``: the command-line options.

See docs/security.md.
"""
