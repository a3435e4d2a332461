"""The runtime the three services share: config, server bootstrap, errors, database, channels.

See README.md in this folder for the API and the conventions a service follows.
"""
