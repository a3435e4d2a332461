"""The runtime the three services share: config, server bootstrap, errors, database, channels,
validation and pages, and the value types and repository helpers the services have in common.

See README.md in this folder for the API and the conventions a service follows.
"""
