"""API keys and roles: who may call what, and with which audience.
"""
