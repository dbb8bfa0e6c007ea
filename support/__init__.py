"""The support desk: conversations, triage, handoff to people, the webhook outbox and gap reports.

Built on the answer pipeline (retrieval/); the API and the CLI build on it.
"""
